"""Losses and reductions for training on noisy labels, and calibration measures.

Taught in lesson 04 (label smoothing and robust losses); homework 3 has students
write label smoothing, generalized cross entropy, bootstrapping, the trimmed mean and
frequency class weights themselves and compares them with these.

Every loss takes ``(logits, y)`` (raw scores ``(n, C)`` and integer labels ``(n,)``) and
a ``reduction`` of ``"mean"``, ``"sum"`` or ``"none"`` (the per-example losses), so the
modules below plug into :func:`noisylabels.fit` and into a fastai ``Learner``:

- :func:`label_smoothing_cross_entropy`: cross-entropy against ``(1 - eps) onehot + eps / C``;
  equal to fastai's ``LabelSmoothingCrossEntropy(eps)``;
- :func:`generalized_cross_entropy`: ``(1 - p_y^q) / q`` (Zhang & Sabuncu 2018), between
  cross-entropy (``q -> 0``) and the mean absolute error (``q = 1``);
- :func:`symmetric_cross_entropy`: ``alpha CE + beta RCE`` (Wang et al. 2019);
- :func:`bootstrap_soft_loss` / :func:`bootstrap_hard_loss`: cross-entropy against a
  blend of the label and the model's own prediction (Reed et al. 2015);
- :func:`trimmed_mean`: a reduction that drops the largest losses of a batch;
- :func:`small_loss_mask` and :func:`coteaching_forget_rate`: keep the small-loss part of
  each batch, the fraction dropped ramping up to the noise rate (co-teaching's R(T));
- :class:`LossModule` and :data:`LOSS_FACTORIES`: any loss as a module, and every loss by name;
- :func:`reliability_diagram_data` and :func:`expected_calibration_error`: calibration.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import MLP
from .training import fit, seed_everything

__all__ = [
    "reduce_losses",
    "smoothed_targets",
    "soft_cross_entropy",
    "label_smoothing_cross_entropy",
    "generalized_cross_entropy",
    "reverse_cross_entropy",
    "symmetric_cross_entropy",
    "bootstrap_soft_loss",
    "bootstrap_hard_loss",
    "trimmed_mean",
    "coteaching_forget_rate",
    "small_loss_mask",
    "LossModule",
    "LabelSmoothingCE",
    "GeneralizedCrossEntropy",
    "BootstrappingLoss",
    "TrimmedMeanLoss",
    "SmallLossSelection",
    "LOSS_FACTORIES",
    "make_robust_loss",
    "ROBUST_LOSSES",
    "train_with_loss",
    "reliability_diagram_data",
    "expected_calibration_error",
]


# ----------------------------------------------------------------------------- reductions
def reduce_losses(losses: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Reduce per-example ``losses`` with ``"mean"``, ``"sum"`` or ``"none"``. Lesson 04 teaches it."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check(logits, y):
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (n, num_classes), got {tuple(logits.shape)}")
    if y.ndim != 1 or len(y) != len(logits):
        raise ValueError(f"y must have shape ({len(logits)},), got {tuple(y.shape)}")
    return y.long()


# ----------------------------------------------------------------------------- label smoothing
def smoothed_targets(y: torch.Tensor, num_classes: int, eps: float = 0.1) -> torch.Tensor:
    """Label-smoothed targets ``(1 - eps) * onehot(y) + eps / num_classes``, shape ``(n, C)``.
    Lesson 04 teaches it."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1], got {eps}")
    onehot = F.one_hot(y.long(), num_classes).float()
    return (1.0 - eps) * onehot + eps / num_classes


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"):
    """Cross-entropy ``-sum_k t_k log softmax(logits)_k`` against soft targets ``(n, C)``. Lesson 04 teaches it."""
    losses = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    return reduce_losses(losses, reduction)


def label_smoothing_cross_entropy(logits, y, eps: float = 0.1, reduction: str = "mean"):
    """Cross-entropy against the smoothed targets ``(1 - eps) onehot + eps / C``.

    Equals ``(1 - eps) CE(logits, y) + eps * mean_k(-log p_k)``, which is how fastai's
    ``LabelSmoothingCrossEntropy(eps)`` computes it.
    Lesson 04 teaches it.
    """
    y = _check(logits, y)
    return soft_cross_entropy(logits, smoothed_targets(y, logits.shape[1], eps), reduction)


# ----------------------------------------------------------------------------- robust losses
def generalized_cross_entropy(logits, y, q: float = 0.7, reduction: str = "mean"):
    """Generalized cross entropy ``(1 - p_y^q) / q`` (Zhang & Sabuncu 2018; ``q = 0.7``).

    Its gradient is the cross-entropy's times ``p_y^q``: examples the model finds
    unlikely (often the mislabelled ones) pull less. ``q -> 0`` gives cross-entropy,
    ``q = 1`` the mean absolute error ``1 - p_y``.
    Lesson 04 teaches it.
    """
    y = _check(logits, y)
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must lie in (0, 1], got {q}")
    log_p_y = F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    losses = (1.0 - torch.exp(q * log_p_y)) / q
    return reduce_losses(losses, reduction)


def reverse_cross_entropy(logits, y, log_zero: float = -4.0, reduction: str = "mean"):
    """Reverse cross-entropy ``-sum_k p_k log onehot_k`` with ``log 0`` clipped to ``log_zero``.

    With ``A = log_zero`` this is ``-A (1 - p_y)``: a scaled mean absolute error.
    Lesson 04 teaches it.
    """
    y = _check(logits, y)
    p_y = F.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return reduce_losses(-log_zero * (1.0 - p_y), reduction)


def symmetric_cross_entropy(logits, y, alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0,
                            reduction: str = "mean"):
    """Symmetric cross entropy ``alpha CE + beta RCE`` (Wang et al. 2019; their MNIST setting).
    Lesson 04 teaches it."""
    y = _check(logits, y)
    ce = F.cross_entropy(logits, y, reduction="none")
    rce = reverse_cross_entropy(logits, y, log_zero, reduction="none")
    return reduce_losses(alpha * ce + beta * rce, reduction)


def bootstrap_soft_loss(logits, y, beta: float = 0.95, reduction: str = "mean"):
    """Soft bootstrapping (Reed et al. 2015): cross-entropy against ``beta onehot + (1 - beta) p``.

    ``p`` is the model's own softmax and gradients flow through it, as in the paper:
    the loss is ``beta CE + (1 - beta) H(p)``, an entropy term that rewards confident
    predictions whatever the label says. Lesson 04 teaches it.
    """
    y = _check(logits, y)
    log_p = F.log_softmax(logits, dim=1)
    targets = beta * F.one_hot(y, logits.shape[1]).float() + (1.0 - beta) * log_p.exp()
    return reduce_losses(-(targets * log_p).sum(dim=1), reduction)


def bootstrap_hard_loss(logits, y, beta: float = 0.8, reduction: str = "mean"):
    """Hard bootstrapping (Reed et al. 2015): target ``beta onehot(y) + (1 - beta) onehot(argmax p)``.

    The loss is ``beta CE(y) + (1 - beta) CE(argmax p)``; the argmax carries no gradient.
    Lesson 04 teaches it.
    """
    y = _check(logits, y)
    log_p = F.log_softmax(logits, dim=1)
    pred = log_p.argmax(dim=1)
    losses = -beta * log_p.gather(1, y[:, None]).squeeze(1) - (1.0 - beta) * log_p.gather(1, pred[:, None]).squeeze(1)
    return reduce_losses(losses, reduction)


# ----------------------------------------------------------------------------- robust reductions
def trimmed_mean(losses: torch.Tensor, trim: float = 0.2) -> torch.Tensor:
    """Mean of the ``1 - trim`` fraction of smallest ``losses`` (the largest are dropped).

    The forum's question in lesson 04: the median is not differentiable, but the mean of
    the kept losses is, and its gradient is zero on the dropped (likely mislabelled)
    examples. At least one loss is always kept.
    """
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must lie in [0, 1), got {trim}")
    losses = losses.reshape(-1)
    keep = max(1, int(round(len(losses) * (1.0 - trim))))
    return torch.topk(losses, keep, largest=False, sorted=False).values.mean()


def coteaching_forget_rate(epoch: int, noise_rate: float, num_gradual: int = 10, exponent: float = 1.0) -> float:
    """Co-teaching's R(T): the fraction of each batch dropped at ``epoch`` (1-based).

    Ramps from 0 (before epoch 1) to ``noise_rate`` at epoch ``num_gradual``:
    ``R(T) = noise_rate * min((T / num_gradual) ** exponent, 1)``, where ``T`` counts the
    epochs already finished (``epoch - 1``) as in the authors' code, so the first epoch
    keeps every example. Lesson 04 teaches it.
    """
    finished = max(0, epoch - 1)
    return float(noise_rate * min((finished / max(num_gradual, 1)) ** exponent, 1.0))


def small_loss_mask(losses: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Boolean mask of the ``keep_fraction`` smallest ``losses`` (at least one). Lesson 04 teaches it."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must lie in (0, 1], got {keep_fraction}")
    losses = losses.reshape(-1)
    keep = max(1, int(round(len(losses) * keep_fraction)))
    mask = torch.zeros(len(losses), dtype=torch.bool, device=losses.device)
    mask[torch.topk(losses.detach(), keep, largest=False).indices] = True
    return mask


# ----------------------------------------------------------------------------- modules
class LossModule(nn.Module):
    """A loss function ``fn(logits, y, **settings, reduction=...)`` as a module, for
    :func:`noisylabels.fit`'s ``loss_fn`` and a fastai ``Learner``'s ``loss_func``
    (lesson 04): ``LossModule(generalized_cross_entropy, q=0.7)``.
    """

    def __init__(self, fn=None, reduction: str = "mean", **settings):
        super().__init__()
        self.fn, self.reduction, self.settings = fn, reduction, settings

    def forward(self, logits, y):
        return self.fn(logits, y, reduction=self.reduction, **self.settings)

    def extra_repr(self):
        return ", ".join([getattr(self.fn, "__name__", "")] + [f"{k}={v!r}" for k, v in self.settings.items()])

    # fastai calls these when decoding predictions
    def activation(self, out):
        return F.softmax(out, dim=-1)

    def decodes(self, out):
        return out.argmax(dim=-1)


class LabelSmoothingCE(LossModule):
    """Module form of :func:`label_smoothing_cross_entropy` (lesson 04)."""

    def __init__(self, eps: float = 0.1, reduction: str = "mean"):
        super().__init__(label_smoothing_cross_entropy, reduction, eps=eps)


class GeneralizedCrossEntropy(LossModule):
    """Module form of :func:`generalized_cross_entropy` (lesson 04)."""

    def __init__(self, q: float = 0.7, reduction: str = "mean"):
        super().__init__(generalized_cross_entropy, reduction, q=q)


class BootstrappingLoss(LossModule):
    """Module form of :func:`bootstrap_soft_loss` (``kind="soft"``, beta 0.95) or
    :func:`bootstrap_hard_loss` (``kind="hard"``, beta 0.8) (lesson 04)."""

    def __init__(self, kind: str = "soft", beta: float | None = None, reduction: str = "mean"):
        if kind not in ("soft", "hard"):
            raise ValueError(f"kind must be 'soft' or 'hard', got {kind!r}")
        fn, default_beta = (bootstrap_soft_loss, 0.95) if kind == "soft" else (bootstrap_hard_loss, 0.8)
        super().__init__(fn, reduction, beta=beta if beta is not None else default_beta)


class TrimmedMeanLoss(LossModule):
    """Cross-entropy (or ``base_loss``) reduced by :func:`trimmed_mean` over the batch (lesson 04)."""

    def __init__(self, trim: float = 0.2, base_loss=None):
        super().__init__(base_loss, "mean", trim=trim)
        self.trim = trim

    def forward(self, logits, y):
        losses = (self.fn(logits, y, reduction="none") if self.fn is not None
                  else F.cross_entropy(logits, y.long(), reduction="none"))
        return trimmed_mean(losses, self.trim)


class SmallLossSelection(LossModule):
    """Small-loss selection (one network's half of co-teaching, Han et al. 2018; lesson 04).

    Each batch keeps the ``1 - R(T)`` fraction of examples with the smallest
    cross-entropy and averages their loss; ``R(T)`` is :func:`coteaching_forget_rate`,
    ramping to ``forget_rate`` (the assumed noise rate) over ``num_gradual`` epochs.
    :func:`noisylabels.fit` calls :meth:`set_epoch` before each epoch.
    """

    def __init__(self, forget_rate: float, num_gradual: int = 10, exponent: float = 1.0):
        super().__init__(None, "mean", forget_rate=forget_rate, num_gradual=num_gradual, exponent=exponent)
        self.forget_rate, self.num_gradual, self.exponent = forget_rate, num_gradual, exponent
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def current_forget_rate(self) -> float:
        return coteaching_forget_rate(self.epoch, self.forget_rate, self.num_gradual, self.exponent)

    def forward(self, logits, y):
        losses = F.cross_entropy(logits, y.long(), reduction="none")
        mask = small_loss_mask(losses, 1.0 - self.current_forget_rate)
        return losses[mask].mean()

    def extra_repr(self):
        return f"forget_rate={self.forget_rate}, num_gradual={self.num_gradual}, epoch={self.epoch}"


# ----------------------------------------------------------------------------- the registry
#: Every loss lesson 04 and ``benchmarks/robust_losses.py`` compare: name -> factory
#: ``(noise_rate, **settings) -> module`` with the course's settings. A new loss is its
#: function above, one line here and a test (``tests/test_losses.py`` runs every entry).
#: ``noise_rate`` sets the trimmed fraction and co-teaching's forget rate (both assume the
#: noise rate known, as the co-teaching paper does).
LOSS_FACTORIES = {
    "cross_entropy": lambda noise_rate, **kw: nn.CrossEntropyLoss(**kw),
    "label_smoothing": lambda noise_rate, **kw: LossModule(label_smoothing_cross_entropy, **{"eps": 0.1, **kw}),
    "gce": lambda noise_rate, **kw: LossModule(generalized_cross_entropy, **{"q": 0.7, **kw}),
    "symmetric_ce": lambda noise_rate, **kw: LossModule(symmetric_cross_entropy, **kw),
    "bootstrap_soft": lambda noise_rate, **kw: LossModule(bootstrap_soft_loss, **{"beta": 0.95, **kw}),
    "bootstrap_hard": lambda noise_rate, **kw: LossModule(bootstrap_hard_loss, **{"beta": 0.8, **kw}),
    "trimmed_mean": lambda noise_rate, **kw: TrimmedMeanLoss(**{"trim": noise_rate, **kw}),
    "small_loss": lambda noise_rate, **kw: SmallLossSelection(**{"forget_rate": noise_rate, **kw}),
}

#: The names of :data:`LOSS_FACTORIES`, in the order lesson 04 plots them.
ROBUST_LOSSES = tuple(LOSS_FACTORIES)


def make_robust_loss(name: str, noise_rate: float = 0.4, **kwargs) -> nn.Module:
    """A fresh loss module by name from :data:`LOSS_FACTORIES`, with the course's settings (lesson 04).

    Keyword arguments override the defaults: ``eps=0.1``, ``q=0.7``, ``alpha=0.1, beta=1.0``,
    soft ``beta=0.95``, hard ``beta=0.8``, ``trim=noise_rate``, ``num_gradual=10``.
    """
    if name not in LOSS_FACTORIES:
        raise ValueError(f"unknown loss {name!r}; choose one of {ROBUST_LOSSES}")
    return LOSS_FACTORIES[name](noise_rate, **kwargs)


def train_with_loss(loss_fn, train, test=None, *, hidden=(512,), num_classes: int = 10, num_epochs: int = 40,
                    lr: float = 1e-3, batch_size: int = 128, seed: int = 0, progress: bool = True,
                    desc: str | None = None, val=None):
    """Lesson 04's experiment: a fresh :class:`~noisylabels.MLP` trained with ``loss_fn`` on
    ``train``, Adam at a fixed ``lr``, for all ``num_epochs``; returns ``(history, model)``.

    Every loss gets the same network, initialization (``seed``) and budget, so their test
    accuracies compare. With a clean held-out ``val`` the history also says what early
    stopping on it would have kept (``history.early_stopped()``).
    Lesson 04 and ``benchmarks/robust_losses.py`` call it.
    """
    seed_everything(seed)
    model = MLP(hidden=tuple(hidden), num_classes=num_classes)
    history = fit(model, train, test, num_epochs=num_epochs, lr=lr, optimizer="adam", batch_size=batch_size,
                  loss_fn=loss_fn, seed=seed, eval_train=False, progress=progress, desc=desc, val=val)
    return history, model


# ----------------------------------------------------------------------------- calibration
def reliability_diagram_data(pred_probs, y, num_bins: int = 15):
    """Per-bin confidence, accuracy and counts of the top-class predictions.

    ``pred_probs`` is ``(n, C)``; bins split the confidence ``max_k p_k`` into
    ``num_bins`` equal-width intervals of ``[0, 1]``. Returns a dict of arrays
    ``bin_edges`` (``num_bins + 1``), ``confidence``, ``accuracy`` (NaN in empty bins) and
    ``counts``. A calibrated model has accuracy equal to confidence in every bin.
    Lesson 04 teaches it.
    """
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if pred_probs.ndim != 2 or len(pred_probs) != len(y):
        raise ValueError(f"pred_probs must have shape ({len(y)}, num_classes), got {pred_probs.shape}")
    conf = pred_probs.max(axis=1)
    correct = (pred_probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # bin b holds confidences in (edges[b], edges[b + 1]]; a confidence of exactly 0 goes in bin 0
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, num_bins - 1)
    counts = np.bincount(which, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=conf, minlength=num_bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=num_bins) / counts
    return {"bin_edges": edges, "confidence": confidence, "accuracy": accuracy, "counts": counts}


def expected_calibration_error(pred_probs, y, num_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over the bins.
    Lesson 04 teaches it."""
    data = reliability_diagram_data(pred_probs, y, num_bins)
    counts = data["counts"]
    filled = counts > 0
    gaps = np.abs(data["accuracy"][filled] - data["confidence"][filled])
    return float((counts[filled] / counts.sum() * gaps).sum())
