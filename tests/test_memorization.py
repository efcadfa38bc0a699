"""Behaviour of noisylabels.memorization: the corruption sweep, the memorized-example
finder and the clean / mislabeled loss split."""


import numpy as np
import pytest
import torch

import noisylabels as nl
from noisylabels.memorization import (
    ZHANG_LEVELS,
    corruption_sweep,
    make_model,
    mean_loss_by_group,
    memorized,
)


@pytest.fixture(scope="module")
def small_digits():
    X, y, X_test, y_test = nl.load_small_digits()
    return X[:300], y[:300], X_test, y_test


@pytest.mark.parametrize("name", ["mlp", "cnn", "inception"])
def test_make_model_gives_ten_logits_for_mnist_and_cifar_shapes(name):
    for shape in ((1, 28, 28), (3, 32, 32)):
        model = make_model(name, shape)
        assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_make_model_rejects_unknown_names():
    with pytest.raises(ValueError):
        make_model("resnet")


def test_zhang_levels_run_from_clean_to_random():
    assert ZHANG_LEVELS[0] == 0.0 and ZHANG_LEVELS[-1] == 1.0 and len(ZHANG_LEVELS) == 6


def test_sweep_records_one_value_per_level(small_digits):
    X, y, X_test, y_test = small_digits
    curve = corruption_sweep(lambda: nl.MLP(64, (32,), 10), X, y, X_test, y_test, (0.0, 0.5), num_epochs=2,
                             progress=False)
    for key in ("train_error", "test_error", "epochs", "epochs_to_fit", "seconds", "fraction_changed", "histories"):
        assert len(curve[key]) == 2, key
    assert curve.fraction_changed[0] == 0.0 and 0.3 < curve.fraction_changed[1] < 0.6
    assert curve.epochs == [2, 2]


def test_sweep_memorizes_random_labels_while_test_error_goes_to_chance(small_digits):
    X, y, X_test, y_test = small_digits
    curve = corruption_sweep(lambda: nl.MLP(64, (512,), 10), X, y, X_test, y_test, (0.0, 1.0),
                             optimizer="adam", lr=3e-3, batch_size=32, num_epochs=300, progress=False)
    assert max(curve.train_error) <= 0.01
    assert curve.test_error[0] <= 0.2 and curve.test_error[1] >= 0.7
    assert curve.epochs_to_fit[1] > curve.epochs_to_fit[0]  # random labels take longer to fit


def test_sweep_evaluates_once_per_level_and_stops_on_the_running_accuracy(small_digits):
    X, y, X_test, y_test = small_digits
    torch.manual_seed(0)
    curve = corruption_sweep(lambda: nl.MLP(64, (32,), 10), X, y, X_test, y_test, (0.0,), num_epochs=10, lr=0.1,
                             progress=False)
    history = curve.histories[0]
    assert np.isnan(history.test_acc).all()          # no test evaluation after every epoch
    assert "example_losses" not in history            # nor a pass over the whole training set
    assert curve.test_error[0] < 0.5                  # the test error is measured once, at the end


def test_sweep_measures_train_error_against_the_corrupted_labels(small_digits):
    X, y, X_test, y_test = small_digits
    # zero epochs of learning is impossible; one epoch at a tiny learning rate leaves the model near chance
    curve = corruption_sweep(lambda: nl.MLP(64, (32,), 10), X, y, X_test, y_test, (1.0,), lr=1e-6, num_epochs=1,
                             progress=False)
    assert curve.train_error[0] > 0.5 and curve.epochs_to_fit == [None]


def test_memorized_returns_mislabeled_examples_predicted_as_their_wrong_label():
    pred_probs = np.eye(3)[[0, 1, 2, 2]]
    y_noisy = np.array([0, 1, 1, 2])
    is_mislabeled = np.array([True, False, True, True])
    assert memorized(pred_probs, y_noisy, is_mislabeled).tolist() == [0, 3]


def test_mean_loss_by_group_splits_clean_and_mislabeled():
    losses = np.array([[1.0, 3.0, 5.0], [0.5, 1.0, 4.0]])
    clean, mislabeled = mean_loss_by_group(losses, np.array([False, False, True]))
    assert clean.tolist() == [2.0, 0.75] and mislabeled.tolist() == [5.0, 4.0]
    with pytest.raises(ValueError):
        mean_loss_by_group(losses, np.array([True, False]))
