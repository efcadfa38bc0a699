"""Behaviour of noisylabels.weighting: resampling, SMOTE, weights, the noise-adaptation layer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import noisylabels as nl
from noisylabels import weighting as W

Y_IMBALANCED = np.array([0] * 30 + [1] * 5 + [2] * 10)


def test_undersampling_keeps_the_rarest_class_count_of_each_class():
    idx = W.undersample_indices(Y_IMBALANCED, seed=0)
    assert np.bincount(Y_IMBALANCED[idx]).tolist() == [5, 5, 5]
    assert len(np.unique(idx)) == len(idx)


def test_oversampling_keeps_every_example_and_repeats_the_small_classes():
    idx = W.oversample_indices(Y_IMBALANCED, seed=0)
    assert np.bincount(Y_IMBALANCED[idx]).tolist() == [30, 30, 30]
    assert set(idx) == set(range(len(Y_IMBALANCED)))


def test_smote_points_lie_on_segments_between_same_class_neighbours():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (20, 3)), rng.normal(10, 1, (4, 3))]).astype(np.float32)
    y = np.array([0] * 20 + [1] * 4)
    X_new, y_new = W.smote_oversample(X, y, k_neighbors=2, seed=0)
    assert np.bincount(y_new).tolist() == [20, 20]
    assert np.array_equal(X_new[:24], X)
    minority = X[y == 1]
    for x in X_new[24:]:
        # x = a + u (b - a) for some pair a != b of minority points, u in [0, 1]
        on_segment = False
        for a in minority:
            for b in minority:
                d = b - a
                if not d.any():
                    continue
                u = float(np.dot(x - a, d) / np.dot(d, d))
                if -1e-5 <= u <= 1 + 1e-5 and np.allclose(a + u * d, x, atol=1e-4):
                    on_segment = True
        assert on_segment


def test_smote_keeps_image_shape():
    X = np.random.default_rng(0).random((12, 4, 4)).astype(np.float32)
    y = np.array([0] * 9 + [1] * 3)
    X_new, y_new = W.smote_oversample(X, y, seed=1)
    assert X_new.shape == (18, 4, 4) and np.bincount(y_new).tolist() == [9, 9]


def test_class_weights_from_frequencies_are_inverse_counts():
    w = W.class_weights_from_frequencies([0, 0, 0, 1], num_classes=3)
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0]))
    assert torch.allclose(W.class_weights_from_frequencies([0, 1, 2]), torch.ones(3))


def test_example_weights_from_classes_index_by_label():
    cw = nl.class_weights_from_frequencies(Y_IMBALANCED)
    w = W.example_weights_from_classes(Y_IMBALANCED, cw)
    # every class carries the same total weight
    totals = [w[Y_IMBALANCED == k].sum() for k in range(3)]
    assert np.allclose(totals, totals[0])


def test_loss_based_rules_order_examples_by_loss_in_opposite_directions():
    losses = torch.tensor([0.05, 0.5, 3.0])
    up = W.loss_based_weights(losses, "upweight_high_loss")
    down = W.loss_based_weights(losses, "downweight_high_loss")
    assert torch.all(up[1:] > up[:-1]) and torch.all(down[1:] < down[:-1])
    assert torch.allclose(up.mean(), torch.tensor(1.0)) and torch.allclose(down.mean(), torch.tensor(1.0))
    assert torch.equal(W.loss_based_weights(losses, "uniform"), torch.ones(3))


def test_loss_based_weights_carry_no_gradient():
    logits = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn = W.LossWeightedCrossEntropy("upweight_high_loss", gamma=2.0)
    loss_fn(logits, y).backward()
    losses = F.cross_entropy(logits.detach(), y, reduction="none")
    w = W.loss_based_weights(losses, "upweight_high_loss", 2.0)
    ref = logits.detach().clone().requires_grad_(True)
    ((w * F.cross_entropy(ref, y, reduction="none")).sum() / w.sum()).backward()
    assert torch.allclose(logits.grad, ref.grad, atol=1e-6)


def test_uniform_rule_with_class_weights_matches_torch_weighted_cross_entropy():
    logits = torch.randn(8, 3)
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2])
    cw = nl.class_weights_from_frequencies(y)
    ours = W.LossWeightedCrossEntropy("uniform", class_weights=cw)(logits, y)
    assert torch.allclose(ours, F.cross_entropy(logits, y, weight=cw))


def test_noise_adaptation_layer_outputs_noisy_log_probs_in_training_and_clean_logits_in_eval():
    torch.manual_seed(0)
    base = nl.MLP(4, (8,), num_classes=3)
    layer = W.NoiseAdaptationLayer(base, 3, init_diagonal=0.7)
    T = layer.transition_matrix
    assert torch.allclose(T.sum(1), torch.ones(3)) and torch.allclose(T.diag(), torch.full((3,), 0.7))
    x = torch.randn(5, 4)
    layer.train()
    noisy = layer(x)
    assert torch.allclose(noisy.exp(), torch.softmax(base(x), 1) @ T, atol=1e-6)
    layer.eval()
    assert torch.equal(layer(x), base(x))


def test_noise_adaptation_layer_learns_the_flip_rate_on_top_of_a_fixed_clean_classifier():
    # 40 % of class 0 is labelled 1; with the classifier trained on clean labels and
    # frozen, the only way to fit the noisy labels is T[0, 1] ~ 0.4
    X, y, _, _ = nl.load_small_digits(flat=True)
    keep = y < 3
    X, y = X[keep], y[keep]
    rng = np.random.default_rng(0)
    y_noisy = np.where((y == 0) & (rng.random(len(y)) < 0.4), 1, y)
    flip_rate = (y_noisy[y == 0] == 1).mean()
    base = nl.MLP(64, (32,), num_classes=3)
    nl.fit(base, (X, y), num_epochs=15, lr=0.05, progress=False)
    base.requires_grad_(False)
    model = W.NoiseAdaptationLayer(base, 3, init_diagonal=0.9)
    nl.fit(model, (X, y_noisy), num_epochs=40, lr=0.5, progress=False)
    T = model.transition_matrix
    assert abs(T[0, 1].item() - flip_rate) < 0.1, (T, flip_rate)
    assert T[2, 2] > 0.9


def test_fixed_noise_adaptation_layer_does_not_change_its_matrix():
    T0 = np.array([[0.6, 0.4], [0.0, 1.0]])
    model = W.NoiseAdaptationLayer(nl.MLP(4, (8,), num_classes=2), 2, init_transition=T0, trainable=False)
    X = torch.randn(32, 4)
    y = (X[:, 0] > 0).long()
    nl.fit(model, (X, y), num_epochs=3, lr=0.1, progress=False)
    assert torch.allclose(model.transition_matrix, torch.tensor([[0.6, 0.4], [1e-6, 1.0]]), atol=1e-5)


def test_class_error_rates_and_balanced_error():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 0, 0])
    assert np.allclose(W.class_error_rates(pred, y, 3)[:2], [0.25, 1.0])
    assert np.isnan(W.class_error_rates(pred, y, 3)[2])
    assert W.balanced_error(pred, y) == pytest.approx(0.625)


def test_loss_weighted_cross_entropy_is_plain_cross_entropy_during_warmup():
    logits = torch.randn(10, 3, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (10,), generator=torch.Generator().manual_seed(3))
    loss_fn = W.LossWeightedCrossEntropy("downweight_high_loss", warmup_epochs=2)
    loss_fn.set_epoch(2)
    assert torch.allclose(loss_fn(logits, y), F.cross_entropy(logits, y))
    loss_fn.set_epoch(3)
    assert not torch.allclose(loss_fn(logits, y), F.cross_entropy(logits, y))


def test_imbalanced_subsample_has_the_requested_majority_proportion():
    y = np.repeat(np.arange(10), 400)
    idx = nl.subsample_imbalanced(y, majority_class=9, minority_class=4, proportion=0.95, seed=0)
    picked = y[idx]
    assert set(picked) == {4, 9}
    assert (picked == 9).sum() == 400 and (picked == 4).sum() == 21
    assert len(np.unique(idx)) == len(idx)


def test_imbalanced_subsample_keeps_at_least_one_minority_example_and_checks_supply():
    y = np.repeat([4, 9], [3, 400])
    idx = nl.subsample_imbalanced(y, 9, 4, proportion=0.999, seed=0)
    assert (y[idx] == 4).sum() == 1
    with pytest.raises(ValueError, match="need 400 of class 9 and 44 of class 4"):
        nl.subsample_imbalanced(y, 9, 4, proportion=0.9)
    with pytest.raises(ValueError, match="proportion"):
        nl.subsample_imbalanced(y, 9, 4, proportion=1.0)


def test_imbalanced_subset_labels_the_rare_class_one():
    X = np.arange(12)
    y = np.array([9, 4, 9, 9, 1, 9, 4, 9, 9, 9, 9, 9])
    X_sub, y_sub = nl.imbalanced_subset(X, y, 0.8, num_majority=8, seed=0)  # 8 nines, 2 fours
    assert len(X_sub) == 10 and set(X_sub[y_sub == 1].tolist()) == {1, 6} and nl.MINORITY_LABEL == 1
    assert set(y[X_sub[y_sub == 0]].tolist()) == {9}
    X_all, y_all = nl.imbalanced_subset(X, y, None)  # every 4 and 9, in order: a balanced test set
    assert X_all.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11] and y_all.tolist() == [0, 1, 0, 0, 0, 1] + [0] * 5
