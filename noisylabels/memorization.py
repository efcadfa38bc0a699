"""Memorization of corrupted labels: Zhang et al.'s corruption-vs-generalization sweep.

Taught in lesson 01 (label noise and memorization) and measured by
``benchmarks/corruption_curve.py``: for each corruption level the training labels are
corrupted with :func:`~noisylabels.corrupt_labels` (uniform noise, fixed once), a fresh
network is trained with :func:`~noisylabels.fit` until it fits those labels, and the
final train error (against the corrupted labels), test error (against clean labels)
and time to fit are recorded.
"""

from __future__ import annotations

import time

import numpy as np

from .data import with_channel_axis
from .models import MLP, LeNet, SmallInception
from .noise import corrupt_labels
from .results import Results
from .training import evaluate, fit

__all__ = [
    "ZHANG_LEVELS",
    "ZHANG_SETTINGS",
    "make_model",
    "CorruptionCurve",
    "corruption_sweep",
    "memorized",
    "mean_loss_by_group",
]

#: The corruption levels of Zhang et al.'s Fig. 1c.
ZHANG_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

#: Optimizer settings per model: SGD with momentum 0.9 and the learning rate multiplied by
#: 0.95 after each epoch, as in Zhang et al. The decay caps the total step size, so the
#: initial rate must be large enough: the MLP at Zhang et al.'s lr 0.01 stalls near 24 % train
#: error on the 4,000 offline digits. At lr 0.1 and batch 64 random labels are fitted (99.5 %)
#: in 62 epochs (MLP) and 48 (LeNet); lr 0.05 and batch 32 took 53 and 48 epochs but a LeNet
#: epoch costs 1.3 times as much CPU, and lr 0.2 with batch 128 left LeNet untrained on clean
#: labels (lesson 01, issue 25). The Inception entry is Zhang et al.'s lr 0.1, not measured here.
ZHANG_SETTINGS = {
    "mlp": dict(lr=0.1, momentum=0.9, lr_decay=0.95, batch_size=64, num_epochs=80),
    "cnn": dict(lr=0.1, momentum=0.9, lr_decay=0.95, batch_size=64, num_epochs=80),
    "inception": dict(lr=0.1, momentum=0.9, lr_decay=0.95, batch_size=64, num_epochs=60),
}


def make_model(name: str, in_shape=(1, 28, 28), num_classes: int = 10):
    """A fresh model by name: ``"mlp"`` (MLP 1x512), ``"cnn"`` (LeNet) or ``"inception"``
    (Zhang et al.'s small Inception at quarter width). Lesson 01 teaches it."""
    in_channels = in_shape[0]
    if name == "mlp":
        return MLP(int(np.prod(in_shape)), (512,), num_classes)
    if name == "cnn":
        return LeNet(in_channels, num_classes)
    if name == "inception":
        return SmallInception(in_channels, num_classes, width=0.25)
    raise ValueError(f"model must be 'mlp', 'cnn' or 'inception', got {name!r}")


class CorruptionCurve(Results):
    """Result of :func:`corruption_sweep` (a :class:`~noisylabels.results.Results`): lists under
    ``levels``, ``train_error``, ``test_error``, ``epochs`` (epochs trained), ``epochs_to_fit``
    (first epoch at the fit threshold, ``None`` if never), ``seconds`` (training time per
    level), ``fraction_changed`` (labels that differ from the true ones), and ``histories``
    (per epoch: the training loss and accuracy over the epoch's batches; no test figures).
    Keys read as attributes too. Lesson 01 teaches it.
    """


def corruption_sweep(
    model_name,
    X_train,
    y_train,
    X_test,
    y_test,
    levels=ZHANG_LEVELS,
    *,
    num_classes: int = 10,
    kind: str = "uniform",
    fit_threshold: float = 0.995,
    seed: int = 0,
    progress: bool = True,
    **fit_kwargs,
) -> CorruptionCurve:
    """Train a fresh model at each corruption level; return a :class:`CorruptionCurve`.

    ``model_name`` is a name for :func:`make_model` or a factory ``() -> model``. The
    labels at level ``p`` are ``corrupt_labels(y_train, p, num_classes, kind)`` (test
    labels stay clean). Training uses :data:`ZHANG_SETTINGS` for named models, updated
    by ``fit_kwargs`` (for example ``num_epochs=``, ``lr=``), and stops once the training
    accuracy on the corrupted labels, counted over the epoch's batches as they are trained
    (``fit(..., eval_train=False)``), reaches ``fit_threshold``. The final train error
    (against the corrupted labels) and test error are then measured once, on the whole
    sets: evaluating both after every epoch cost a third of a LeNet sweep and only the last
    values are kept. Lesson 01 teaches it.
    """
    import torch

    X_train = torch.as_tensor(np.asarray(X_train, dtype=np.float32))
    X_test = torch.as_tensor(np.asarray(X_test, dtype=np.float32))
    X_train, X_test = with_channel_axis(X_train), with_channel_axis(X_test)  # (n, H, W) -> (n, 1, H, W)
    settings = dict(ZHANG_SETTINGS.get(model_name, {})) if isinstance(model_name, str) else {}
    settings.update(fit_kwargs)
    curve = CorruptionCurve(levels=[float(p) for p in levels], train_error=[], test_error=[], epochs=[],
                            epochs_to_fit=[], seconds=[], fraction_changed=[], histories=[])
    for i, p in enumerate(levels):
        y_noisy, is_mislabeled = corrupt_labels(y_train, p, num_classes, kind=kind, seed=seed + i)
        model = make_model(model_name, tuple(X_train.shape[1:]), num_classes) if isinstance(model_name, str) \
            else model_name()
        name = model_name if isinstance(model_name, str) else type(model).__name__
        start = time.perf_counter()
        history = fit(model, (X_train, y_noisy), None, seed=seed, progress=progress,
                      stop_at_train_acc=fit_threshold, desc=f"{name} corruption {p:.1f}",
                      **{"eval_train": False, **settings})
        curve["seconds"].append(time.perf_counter() - start)
        curve["train_error"].append(1.0 - evaluate(model, (X_train, y_noisy))[1])
        curve["test_error"].append(1.0 - evaluate(model, (X_test, y_test))[1])
        curve["epochs"].append(history.epoch[-1])
        curve["epochs_to_fit"].append(history.epochs_to_fit(fit_threshold))
        curve["fraction_changed"].append(float(np.mean(is_mislabeled)))
        curve["histories"].append(history)
    return curve


def memorized(pred_probs, y_noisy, is_mislabeled):
    """Indices of mislabeled examples whose predicted class is the *wrong* label they were given.
    Lesson 01 teaches it."""
    pred = np.asarray(pred_probs).argmax(1)
    return np.flatnonzero(np.asarray(is_mislabeled) & (pred == np.asarray(y_noisy)))


def mean_loss_by_group(example_losses, is_mislabeled):
    """Per-epoch mean loss of the clean and of the mislabeled examples.

    ``example_losses`` is ``(epochs, n)`` (``History.example_losses``); returns
    ``(clean, mislabeled)``, two arrays of length ``epochs``. The gap between them is
    the early-learning phenomenon lesson 01 shows and later lessons exploit.
    """
    losses = np.asarray(example_losses)
    mask = np.asarray(is_mislabeled, dtype=bool)
    if losses.shape[1] != len(mask):
        raise ValueError(f"example_losses has {losses.shape[1]} examples, is_mislabeled {len(mask)}")
    return losses[:, ~mask].mean(1), losses[:, mask].mean(1)
