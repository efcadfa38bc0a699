"""Learning to reweight examples (noisylabels.reweight, lesson 06, homework 4)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import noisylabels as nl
from noisylabels.reweight import _forward_mode_step_parts


@pytest.fixture(scope="module")
def offline_mnist():
    return nl.load_offline_mnist()


def _tiny_problem(n=8, n_val=5, num_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, num_classes, (n,), generator=g)
    X_val = torch.randn(n_val, 6, generator=g, dtype=torch.float64)
    y_val = torch.randint(0, num_classes, (n_val,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, num_classes)).double()
    return model, X, y, X_val, y_val


def _validation_loss_after_step(model, X, y, X_val, y_val, eps, lr):
    """L_val at theta - lr * grad sum_i eps_i l_i, by plain autograd on a copy of the model."""
    import copy

    clone = copy.deepcopy(model)
    loss = (eps * F.cross_entropy(clone(X), y, reduction="none")).sum()
    grads = torch.autograd.grad(loss, list(clone.parameters()))
    with torch.no_grad():
        for p, g in zip(clone.parameters(), grads):
            p -= lr * g
        return F.cross_entropy(clone(X_val), y_val).item()


def test_validation_gradient_matches_finite_differences_of_the_validation_loss():
    model, X, y, X_val, y_val = _tiny_problem()
    lr, h = 0.5, 1e-5
    analytic = nl.validation_gradient(model, X, y, X_val, y_val, lr)
    assert analytic.shape == (len(y),)
    numeric = []
    for i in range(len(y)):
        e = torch.zeros(len(y), dtype=torch.float64)
        e[i] = h
        plus = _validation_loss_after_step(model, X, y, X_val, y_val, e, lr)
        minus = _validation_loss_after_step(model, X, y, X_val, y_val, -e, lr)
        numeric.append((plus - minus) / (2 * h))
    np.testing.assert_allclose(analytic.numpy(), numeric, rtol=1e-5, atol=1e-9)
    assert analytic.abs().max() > 1e-3  # the check is not vacuous


def test_weights_are_the_rectified_normalized_negative_validation_gradient():
    model, X, y, X_val, y_val = _tiny_problem(seed=1)
    u = -nl.validation_gradient(model, X, y, X_val, y_val, lr=0.1)
    w = nl.example_weights(model, X, y, X_val, y_val, lr=0.1)
    assert (u > 0).any() and (u < 0).any()
    assert torch.all(w[u <= 0] == 0)
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=w.dtype))
    torch.testing.assert_close(w[u > 0], u[u > 0] / u[u > 0].sum())


def test_forward_mode_step_gives_the_look_ahead_gradient():
    model, X, y, X_val, y_val = _tiny_problem(seed=2)
    look_ahead = nl.validation_gradient(model, X, y, X_val, y_val, lr=0.3)
    forward, losses, logits = _forward_mode_step_parts(model, X, y, X_val, y_val, lr=0.3)
    torch.testing.assert_close(forward, look_ahead, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(losses.detach(), F.cross_entropy(model(X), y, reduction="none").detach())
    assert losses.requires_grad and logits.shape == (len(y), 3)


def test_duplicate_with_flipped_label_gets_weight_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 2))
    X = torch.randn(6, 1, 4, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 0])
    X[5] = X[4]  # example 5 is example 4 with the other label
    y[5] = 1 - y[4]
    X_val, y_val = X[4:5].clone(), y[4:5].clone()  # the clean validation set knows the right label
    for method in ("forward", "look-ahead"):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        w, _, _ = nl.reweighted_step(model, opt, X, y, X_val, y_val, method=method)
        assert w[5] == 0, f"{method}: the flipped duplicate got weight {w[5]:.3g}"
        assert w[4] > 0, f"{method}: the correctly labelled original got weight 0"


def test_rectify_and_normalize_keeps_all_zero_weights_zero():
    for u in (torch.zeros(5), -torch.rand(5), torch.tensor([-1.0, 0.0, -0.5])):
        w = nl.rectify_and_normalize(u)
        assert torch.equal(w, torch.zeros_like(u)), w
    w = nl.rectify_and_normalize(torch.tensor([2.0, -1.0, 6.0, 0.0]))
    torch.testing.assert_close(w, torch.tensor([0.25, 0.0, 0.75, 0.0]))


def test_all_zero_weights_leave_the_model_unchanged():
    model, X, y, X_val, y_val = _tiny_problem(seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w, _, _ = nl.reweighted_step(model, opt, X, y, X_val, y_val, lr=0.0)  # a zero look-ahead step: all zero
    assert torch.all(w == 0) and torch.isfinite(w).all()
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p.detach(), b)


def test_look_ahead_is_one_gradient_step():
    params = {"a": torch.ones(2, 3), "b": torch.zeros(3)}
    grads = {"a": torch.full((2, 3), 2.0), "b": torch.tensor([1.0, -1.0, 0.0])}
    new = nl.look_ahead(params, grads, lr=0.5)
    torch.testing.assert_close(new["a"], torch.zeros(2, 3))
    torch.testing.assert_close(new["b"], torch.tensor([-0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="name different tensors"):
        nl.look_ahead(params, {"a": grads["a"]}, lr=0.5)


def _batch_norm_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 2)).double()


@pytest.mark.parametrize("method", ["forward", "look-ahead"])
def test_batch_norm_model_trains_and_updates_its_statistics_once_a_step(method):
    model = _batch_norm_model()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(12, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (12,), generator=g)
    X_val = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    y_val = torch.tensor([0, 1, 0, 1])
    bn = model[1]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in (1, 2):
        w, losses, _ = nl.reweighted_step(model, opt, X, y, X_val, y_val, method=method)
        assert torch.isfinite(w).all() and torch.isclose(w.sum(), torch.tensor(1.0, dtype=w.dtype))
        assert int(bn.num_batches_tracked) == step  # the look-ahead never moves the real statistics
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_batch_norm_forward_mode_matches_look_ahead():
    model = _batch_norm_model()
    g = torch.Generator().manual_seed(2)
    X = torch.randn(10, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (10,), generator=g)
    X_val = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    y_val = torch.tensor([0, 1, 1, 0])
    look_ahead = nl.validation_gradient(model, X, y, X_val, y_val, lr=0.1)
    forward, _, _ = _forward_mode_step_parts(model, X, y, X_val, y_val, lr=0.1)
    torch.testing.assert_close(forward, look_ahead, rtol=1e-7, atol=1e-12)


def test_fit_reweighted_records_history_and_weights(offline_mnist):
    (X, y), (X_val, y_val), (X_test, y_test) = nl.imbalanced_pair(0.9, data=offline_mnist, seed=0)
    X, y = X[:150], y[:150]
    history = nl.fit_reweighted(nl.LeNet(num_classes=2), (X, y), (X_val, y_val), (X_test, y_test),
                                num_epochs=2, lr=0.01, batch_size=50, progress=False)
    assert history.epoch == [1, 2]
    assert len(history.test_acc) == 2 and all(0.0 <= a <= 1.0 for a in history.test_acc)
    assert history.example_weights.shape == (2, 150)
    # weights times the batch size: each batch of 50 sums to 50 (or to 0 when every weight is 0)
    batches_with_weight = history.example_weights[0].sum() / 50
    assert abs(batches_with_weight - round(batches_with_weight)) < 1e-3 and 1 <= round(batches_with_weight) <= 3
    assert np.all(history.example_weights >= 0)


def test_fit_reweighted_is_fit_with_a_reweighted_step_on_every_batch(offline_mnist):
    (X, y), (X_val, y_val), _ = nl.imbalanced_pair(0.9, data=offline_mnist, seed=0)
    X, y = X[:120], y[:120]
    nl.seed_everything(1)
    history = nl.fit_reweighted(nl.LeNet(num_classes=2), (X, y), (X_val, y_val), num_epochs=1, lr=0.01,
                                batch_size=40, eval_train=False, progress=False)
    # the same epoch by hand: fit's seeding and batch order, one step of Algorithm 1 a batch
    nl.seed_everything(1)
    model = nl.LeNet(num_classes=2)
    nl.seed_everything(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    weights, loss_sum = torch.zeros(len(y)), 0.0
    for i in range(0, len(y), 40):
        idx = order[i:i + 40]
        w, losses, _ = nl.reweighted_step(model, opt, X[idx], y[idx], X_val, y_val)
        weights[idx] = w * len(idx)
        loss_sum += losses.mean().item() * len(idx)
    np.testing.assert_array_equal(history.example_weights[0], weights.numpy())
    assert history.train_loss[0] == pytest.approx(loss_sum / len(y), rel=1e-12)
    assert history.zero_weight_fraction[0] == pytest.approx(float((weights == 0).float().mean()))


def test_imbalanced_pair_has_the_requested_proportion_and_a_balanced_clean_validation_set(offline_mnist):
    (X, y), (X_val, y_val), (X_test, y_test) = nl.imbalanced_pair(0.995, data=offline_mnist, seed=0)
    assert X.shape[1:] == (1, 28, 28)
    # the course's convention: the rare class is label 1; offline data: 400 a class, 5 to validation
    assert int((y == 0).sum()) == 395 and int((y == 1).sum()) == 2
    assert sorted(y_val.tolist()) == [0] * 5 + [1] * 5
    assert int((y_test == 0).sum()) == int((y_test == 1).sum()) == 100
    # no validation digit is also a training digit
    flat, flat_val = X.reshape(len(X), -1), X_val.reshape(len(X_val), -1)
    assert torch.cdist(flat_val, flat).min() > 0
    (_, y), _, _ = nl.imbalanced_pair(0.9, num_majority=180, data=offline_mnist, seed=1)
    assert int((y == 0).sum()) == 180 and int((y == 1).sum()) == 20


def test_imbalance_errors_trains_every_method_on_the_same_task_and_repeats(offline_mnist):
    errors = nl.imbalance_errors(0.9, 0, num_steps=2, data=offline_mnist)
    assert tuple(errors) == nl.IMBALANCE_METHODS and all(0.0 <= e <= 1.0 for e in errors.values())
    assert nl.imbalance_errors(0.9, 0, num_steps=2, methods=("baseline",), data=offline_mnist) == \
        {"baseline": errors["baseline"]}


def test_imbalance_errors_swaps_only_training_labels_and_the_fair_baseline_sees_the_clean_images(
        offline_mnist, monkeypatch):
    import noisylabels.reweight as reweight

    seen = {}
    real_fit = reweight.fit

    def spy(model, train, *args, **kwargs):
        seen.setdefault("train", []).append(train)
        return real_fit(model, train, *args, **kwargs)

    monkeypatch.setattr(reweight, "fit", spy)
    (X, y), (X_val, y_val), _ = nl.imbalanced_pair(0.9, data=offline_mnist, seed=0)
    nl.imbalance_errors(0.9, 0, num_steps=1, noise_rate=0.3, methods=("baseline", "resampling + clean"),
                        data=offline_mnist)
    (_, y_baseline), (X_fair, y_fair) = seen["train"]
    swapped = (y_baseline != y).float().mean().item()
    assert 0.2 < swapped < 0.4, swapped
    flat_fair = X_fair.reshape(len(X_fair), -1)
    assert all((flat_fair == image.reshape(1, -1)).all(dim=1).any() for image in X_val)   # every clean image in
    assert int((y_fair == 1).sum()) == int((y_fair == 0).sum())                                     # and balanced
    with pytest.raises(ValueError, match="unknown methods"):
        nl.imbalance_errors(0.9, 0, num_steps=1, methods=("oracle",), data=offline_mnist)


def test_noise_accuracies_early_stop_only_the_runs_that_did_not_train_on_the_clean_images(offline_mnist):
    result = nl.noise_accuracies(0.4, 0, num_train=300, num_epochs=2, data=offline_mnist)
    assert set(result["final"]) == set(nl.NOISE_METHODS)
    assert set(result["early_stopped"]) == {"baseline", "L2RW"}
    for method, history in result["histories"].items():
        assert len(history.test_acc) == 2
        assert result["final"][method] == history.test_acc[-1]
    assert result["early_stopped"]["baseline"] in result["histories"]["baseline"].test_acc
    assert len(result["histories"]["baseline + clean"].test_acc) == 2
    assert np.isfinite(result["mean_weight_clean"]) and np.isfinite(result["mean_weight_corrupted"])
    background = nl.noise_accuracies(0.4, 0, kind="background", num_train=300, num_epochs=1, methods=("baseline",),
                                     data=offline_mnist)
    assert np.isnan(background["mean_weight_clean"]) and set(background["final"]) == {"baseline"}
    with pytest.raises(ValueError, match="unknown methods"):
        nl.noise_accuracies(0.4, 0, methods=("oracle",), data=offline_mnist)


def test_reweighted_step_seconds_times_the_three_steps():
    seconds = nl.reweighted_step_seconds(repeats=1, warmup=0)
    assert set(seconds) == {"plain", "forward", "look-ahead"} and all(t > 0 for t in seconds.values())


def test_noisy_digits_keep_the_validation_labels_clean(offline_mnist):
    (X, y_noisy), (X_val, y_val), (X_test, y_test), y_true, is_mislabeled = nl.noisy_digits_with_clean_val(
        0.4, data=offline_mnist)
    assert len(X) == 3900 and len(X_val) == 100 and len(X_test) == 1000
    assert np.bincount(y_val.numpy()).tolist() == [10] * 10
    np.testing.assert_array_equal(is_mislabeled, y_noisy.numpy() != y_true)
    assert 0.35 < is_mislabeled.mean() < 0.45
    (X_small, _), _, _, _, mislabeled_small = nl.noisy_digits_with_clean_val(0.4, num_train=500, data=offline_mnist)
    assert len(X_small) == len(mislabeled_small) == 500


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_reweighted_step_runs_on_cuda():
    model = _batch_norm_model().cuda()
    X = torch.randn(8, 1, 8, 8, dtype=torch.float64, device="cuda")
    y = torch.randint(0, 2, (8,), device="cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w, _, _ = nl.reweighted_step(model, opt, X, y, X[:4], y[:4])
    assert w.device.type == "cuda" and torch.isfinite(w).all()


@pytest.mark.slow
def test_reweighting_beats_the_baseline_on_strong_class_imbalance(offline_mnist):
    (X, y), (X_val, y_val), (X_test, y_test) = nl.imbalanced_pair(0.99, data=offline_mnist, seed=0)
    settings = dict(num_epochs=75, lr=0.01, batch_size=100, progress=False, seed=0)
    torch.manual_seed(0)
    baseline = nl.LeNet(num_classes=2)
    nl.fit(baseline, (X, y), eval_train=False, **settings)
    torch.manual_seed(0)
    reweighted = nl.LeNet(num_classes=2)
    nl.fit_reweighted(reweighted, (X, y), (X_val, y_val), eval_train=False, **settings)
    err_base = nl.balanced_error(nl.predict_proba(baseline, X_test), y_test)
    err_l2rw = nl.balanced_error(nl.predict_proba(reweighted, X_test), y_test)
    assert err_l2rw < err_base - 0.1, (err_base, err_l2rw)


def test_noise_accuracies_with_fewer_clean_images_retrains_only_l2rw_and_rereads_the_baseline_stop(
        offline_mnist, monkeypatch):
    import noisylabels.reweight as reweight

    clean_sets = []
    real_fit_reweighted = reweight.fit_reweighted

    def spy(model, train, val, *args, **kwargs):
        clean_sets.append(np.bincount(val[1].numpy(), minlength=10).tolist())
        return real_fit_reweighted(model, train, val, *args, **kwargs)

    monkeypatch.setattr(reweight, "fit_reweighted", spy)
    settings = dict(num_train=300, num_epochs=3, data=offline_mnist)
    plain = nl.noise_accuracies(0.4, 0, **settings)
    result = nl.noise_accuracies(0.4, 0, clean_counts=(1, 3), **settings)
    assert result["final"] == plain["final"] and result["early_stopped"] == plain["early_stopped"]
    assert clean_sets == [[10] * 10, [10] * 10, [1] * 10, [3] * 10]     # L2RW again on 1, then 3 a class
    baseline = result["histories"]["baseline"]
    for k, accuracies in result["by_clean_count"].items():
        assert accuracies["early_stopped"] in baseline.test_acc and 0 < accuracies["L2RW"] <= 1
    with pytest.raises(ValueError, match="clean_counts"):
        nl.noise_accuracies(0.4, 0, clean_counts=(10,), **settings)
    with pytest.raises(ValueError, match="clean_counts"):
        nl.noise_accuracies(0.4, 0, clean_counts=(1,), methods=("L2RW",), **settings)


def test_first_per_class_keeps_the_first_k_of_each_class_in_order():
    from noisylabels.reweight import _first_per_class

    y = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    assert _first_per_class(y, 1).tolist() == [0, 1, 2]
    assert _first_per_class(y, 2).tolist() == [0, 1, 2, 3, 4, 5]
