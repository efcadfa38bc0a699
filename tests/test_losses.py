"""Behaviour of noisylabels.losses: closed forms, fastai's label smoothing, autograd gradients."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import noisylabels as nl
from noisylabels import losses as L


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (16,), generator=g)
    return logits, y


def test_smoothed_targets_put_one_minus_eps_plus_eps_over_c_on_the_label():
    t = L.smoothed_targets(torch.tensor([2, 0]), 4, eps=0.2)
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert t[0, 2].item() == pytest.approx(0.85)
    assert t[0, 1].item() == pytest.approx(0.05)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_matches_fastai(batch, eps, reduction):
    from fastai.losses import LabelSmoothingCrossEntropy

    logits, y = batch
    ours = L.label_smoothing_cross_entropy(logits, y, eps=eps, reduction=reduction)
    theirs = LabelSmoothingCrossEntropy(eps=eps, reduction=reduction)(logits, y)
    assert torch.allclose(ours, theirs, atol=1e-10)


def test_label_smoothing_with_eps_zero_is_cross_entropy(batch):
    logits, y = batch
    assert torch.allclose(L.label_smoothing_cross_entropy(logits, y, eps=0.0), F.cross_entropy(logits, y))


def test_gce_closed_form_on_uniform_logits():
    # uniform logits: p_y = 1 / C, so the loss is (1 - C^-q) / q
    logits = torch.zeros(3, 4)
    y = torch.tensor([0, 1, 3])
    got = L.generalized_cross_entropy(logits, y, q=0.7)
    assert math.isclose(got.item(), (1 - 0.25 ** 0.7) / 0.7, rel_tol=1e-6)


def test_gce_limits_are_cross_entropy_and_mae(batch):
    logits, y = batch
    assert torch.allclose(L.generalized_cross_entropy(logits, y, q=1e-6), F.cross_entropy(logits, y), atol=1e-4)
    p_y = F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(L.generalized_cross_entropy(logits, y, q=1.0), (1 - p_y).mean())


def test_gce_gradient_is_cross_entropy_gradient_times_p_to_the_q(batch):
    logits, y = batch
    q = 0.7
    a = logits.clone().requires_grad_(True)
    L.generalized_cross_entropy(a, y, q=q, reduction="sum").backward()
    p = F.softmax(logits, 1)
    p_y = p.gather(1, y[:, None])
    ce_grad = p - F.one_hot(y, 5).double()
    assert torch.allclose(a.grad, p_y ** q * ce_grad, atol=1e-10)


def test_symmetric_ce_is_alpha_ce_plus_beta_times_minus_a_times_one_minus_p(batch):
    logits, y = batch
    p_y = F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    expected = 0.1 * F.cross_entropy(logits, y, reduction="none") + 1.0 * 4.0 * (1 - p_y)
    assert torch.allclose(L.symmetric_cross_entropy(logits, y, reduction="none"), expected)


def test_bootstrap_soft_equals_beta_ce_plus_entropy(batch):
    logits, y = batch
    log_p = F.log_softmax(logits, 1)
    entropy = -(log_p.exp() * log_p).sum(1)
    expected = 0.95 * F.cross_entropy(logits, y, reduction="none") + 0.05 * entropy
    assert torch.allclose(L.bootstrap_soft_loss(logits, y, beta=0.95, reduction="none"), expected)


def test_bootstrap_soft_gradient_matches_autograd_of_the_formula(batch):
    logits, y = batch
    a = logits.clone().requires_grad_(True)
    L.bootstrap_soft_loss(a, y, beta=0.9).backward()
    b = logits.clone().requires_grad_(True)
    p = F.softmax(b, 1)
    targets = 0.9 * F.one_hot(y, 5).double() + 0.1 * p
    (-(targets * torch.log(p)).sum(1).mean()).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-10)


def test_bootstrap_hard_uses_the_argmax_as_second_target():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    y = torch.tensor([1, 2])
    log_p = F.log_softmax(logits, 1)
    expected = torch.stack([
        -(0.8 * log_p[0, 1] + 0.2 * log_p[0, 0]),
        -log_p[1, 2],  # prediction agrees with the label: plain cross-entropy
    ])
    assert torch.allclose(L.bootstrap_hard_loss(logits, y, beta=0.8, reduction="none"), expected)


def test_trimmed_mean_drops_the_largest_losses_and_gives_them_no_gradient():
    losses = torch.tensor([1.0, 5.0, 2.0, 100.0, 3.0], requires_grad=True)
    out = L.trimmed_mean(losses, trim=0.4)
    assert math.isclose(out.item(), 2.0)
    out.backward()
    assert torch.equal(losses.grad, torch.tensor([1 / 3, 0.0, 1 / 3, 0.0, 1 / 3]))


def test_trimmed_mean_with_no_trim_is_the_mean_and_always_keeps_one():
    losses = torch.tensor([4.0, 1.0, 7.0])
    assert math.isclose(L.trimmed_mean(losses, 0.0).item(), 4.0)
    assert math.isclose(L.trimmed_mean(losses, 0.99).item(), 1.0)


def test_coteaching_ramp_reaches_the_noise_rate_after_num_gradual_epochs():
    rates = [L.coteaching_forget_rate(e, 0.4, num_gradual=10) for e in range(1, 15)]
    assert rates[0] == 0.0
    assert math.isclose(rates[5], 0.4 * 5 / 10)
    assert all(math.isclose(r, 0.4) for r in rates[10:])
    assert all(a <= b for a, b in zip(rates, rates[1:]))


def test_small_loss_selection_keeps_the_small_losses_once_ramped():
    loss = L.SmallLossSelection(forget_rate=0.5, num_gradual=2)
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [4.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 0, 0, 0])  # examples 1 and 3 have large losses
    loss.set_epoch(1)
    assert torch.allclose(loss(logits, y), F.cross_entropy(logits, y))
    loss.set_epoch(3)
    assert torch.allclose(loss(logits, y), F.cross_entropy(logits[[0, 2]], y[[0, 2]]))


@pytest.mark.parametrize("name", L.ROBUST_LOSSES)
def test_every_named_loss_gives_a_finite_scalar_with_gradients(batch, name):
    logits, y = batch
    a = logits.float().clone().requires_grad_(True)
    loss_fn = L.make_robust_loss(name, noise_rate=0.4)
    if hasattr(loss_fn, "set_epoch"):
        loss_fn.set_epoch(20)
    out = loss_fn(a, y)
    assert out.ndim == 0 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_a_registry_line_is_all_make_robust_loss_needs(batch, monkeypatch):
    logits, y = batch
    assert L.ROBUST_LOSSES == tuple(L.LOSS_FACTORIES)
    mae = lambda logits, y, reduction="mean": L.reduce_losses(  # noqa: E731
        1 - torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1), reduction)
    monkeypatch.setitem(L.LOSS_FACTORIES, "mae", lambda noise_rate, **kw: L.LossModule(mae, **kw))
    assert torch.allclose(L.make_robust_loss("mae")(logits, y), L.generalized_cross_entropy(logits, y, q=1.0))
    assert torch.allclose(L.make_robust_loss("gce", q=0.5)(logits, y), L.generalized_cross_entropy(logits, y, q=0.5))


def test_train_with_loss_is_fit_of_a_fresh_mlp_with_adam():
    X, y, X_test, y_test = nl.load_offline_mnist()
    X, y, X_test, y_test = X[:300], y[:300], X_test[:100], y_test[:100]
    history, model = L.train_with_loss(L.make_robust_loss("gce"), (X, y), (X_test, y_test), hidden=(16,),
                                       num_epochs=2, batch_size=64, progress=False)
    nl.seed_everything(0)
    by_hand = nl.fit(nl.MLP(hidden=(16,), num_classes=10), (X, y), (X_test, y_test), num_epochs=2, lr=1e-3,
                     optimizer="adam", batch_size=64, loss_fn=L.make_robust_loss("gce"), eval_train=False,
                     progress=False)
    assert history.test_acc == by_hand.test_acc and isinstance(model, nl.MLP)


def test_unknown_loss_name_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        L.make_robust_loss("median")


def test_calibration_of_a_perfectly_calibrated_toy_set_is_zero():
    # confidence 0.75 on 4 examples with 3 right; confidence 1.0 on 2 right ones
    pred_probs = np.array([[0.75, 0.25]] * 4 + [[0.0, 1.0]] * 2)
    y = np.array([0, 0, 0, 1, 1, 1])
    assert L.expected_calibration_error(pred_probs, y, num_bins=10) == pytest.approx(0.0)


def test_expected_calibration_error_closed_form():
    # all at confidence 0.9, half of them right: ECE = |0.5 - 0.9| = 0.4
    pred_probs = np.array([[0.9, 0.1]] * 10)
    y = np.array([0] * 5 + [1] * 5)
    data = L.reliability_diagram_data(pred_probs, y, num_bins=10)
    assert data["counts"].sum() == 10 and data["counts"][8] == 10
    assert data["accuracy"][8] == pytest.approx(0.5)
    assert L.expected_calibration_error(pred_probs, y, num_bins=10) == pytest.approx(0.4)


def test_losses_train_through_fit_and_fastai_learner():
    from fastai.basics import DataLoader as FaDataLoader
    from fastai.basics import DataLoaders, Learner
    import fastai.callback.all  # noqa: F401 (adds fit_one_cycle and no_bar to Learner)
    from torch.utils.data import TensorDataset

    X, y, X_test, y_test = nl.load_small_digits(flat=True)
    hist = nl.fit(nl.MLP(64, (32,)), (X, y), (X_test, y_test), num_epochs=3, lr=0.05,
                  loss_fn=nl.SmallLossSelection(0.2, num_gradual=2), progress=False)
    assert hist.test_acc[-1] > 0.5
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    dls = DataLoaders(FaDataLoader(TensorDataset(Xt, yt), bs=64, shuffle=True),
                      FaDataLoader(TensorDataset(torch.as_tensor(X_test), torch.as_tensor(y_test)), bs=256))
    learn = Learner(dls, nl.MLP(64, (32,)), loss_func=nl.GeneralizedCrossEntropy(0.7))
    with learn.no_logging(), learn.no_bar():
        learn.fit_one_cycle(2, 1e-2)
    assert learn.validate()[0] < 0.7  # GCE is below (1 - 0.1^0.7) / 0.7 ~ 1.14 at chance
