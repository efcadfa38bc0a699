"""Learning to reweight examples (Ren, Zeng, Yang, Urtasun 2018), written with ``torch.func``.

Lesson 06 (learning to reweight) teaches it and homework 4 has students write its parts.
Algorithm 1 of the paper, for any ``torch.nn.Module``, at every training step:

1. per-example weights ``eps = 0`` on the training batch;
2. look-ahead parameters ``theta' = theta - lr * grad_theta sum_i eps_i l_i(theta)``
   (:func:`look_ahead`);
3. the clean validation loss at ``theta'`` and its gradient with respect to ``eps``
   (:func:`validation_gradient`);
4. ``w = max(-dL_val/d eps, 0)``, normalized by its sum, all-zero staying zero
   (:func:`rectify_and_normalize`);
5. the real optimizer step on the weighted training loss ``sum_i w_i l_i(theta)``
   (:func:`reweighted_step`; :func:`fit_reweighted` is the whole training loop).

Because ``eps = 0``, ``theta' = theta`` and the chain rule gives
``dL_val/d eps_i = -lr * grad L_val(theta) . grad l_i(theta)``: the weight of an
example is how well its gradient agrees with the clean validation gradient. The
training step computes it that way by default (one forward-mode pass, reused for the
real step); ``method="look-ahead"`` runs the look-ahead literally. Both give the same
numbers (the tests check it).

No meta-module and no ``higher``: the model's parameters are passed to
``torch.func.functional_call`` and differentiated with ``torch.func.grad``. Buffers
(batch norm running statistics) are given to the look-ahead as copies, so that the
look-ahead never moves the model's own statistics; only the real step does, once.

The lesson's two tasks are :func:`~noisylabels.imbalanced_pair` (MNIST 4 vs 9 with a rare
class, in :mod:`noisylabels.weighting` with the other imbalance tools) and
:func:`noisy_digits_with_clean_val` (ten classes, flipped labels); the fixed-rule
baselines (resampling, class weights) and ``balanced_error`` come from lesson 05's
:mod:`noisylabels.weighting`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad

from .memorization import make_model
from .models import LeNet
from .training import History, as_tensors, fit, get_device, predict_proba, seed_everything
from .weighting import (balanced_error, class_weights_from_frequencies, example_weights_from_classes,
                        imbalanced_pair, oversample_indices)

__all__ = [
    "look_ahead",
    "validation_gradient",
    "rectify_and_normalize",
    "example_weights",
    "reweighted_step",
    "fit_reweighted",
    "IMBALANCE_METHODS",
    "imbalance_errors",
    "NOISE_METHODS",
    "noise_accuracies",
    "reweighted_step_seconds",
    "noisy_digits_with_clean_val",
]


def _params_and_buffers(model: nn.Module):
    """The model's trainable parameters (detached) and copies of its buffers, by name."""
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    return params, buffers


def look_ahead(params: dict, grads: dict, lr: float) -> dict:
    """One plain gradient-descent step: ``{name: params[name] - lr * grads[name]}``.

    ``params`` and ``grads`` map the same names to tensors of the same shapes; the
    result keeps the autograd link to ``grads`` (step 2 of Algorithm 1). Lesson 06 teaches it.
    """
    if params.keys() != grads.keys():
        raise ValueError(f"params and grads name different tensors: {sorted(params)} vs {sorted(grads)}")
    return {name: p - lr * grads[name] for name, p in params.items()}


def validation_gradient(model: nn.Module, X, y, X_val, y_val, lr: float) -> torch.Tensor:
    """``dL_val(theta'(eps)) / d eps`` at ``eps = 0``: one value per training example, shape ``(n,)``.

    Algorithm 1 to the letter: ``theta'(eps)`` are the look-ahead parameters after one
    step of size ``lr`` on the eps-weighted training loss ``sum_i eps_i CE(model(X)_i, y_i)``
    (``torch.func.grad``), ``L_val`` the mean cross-entropy on the clean ``(X_val, y_val)``
    at ``theta'`` (``torch.func.functional_call``), differentiated with respect to ``eps``
    (``torch.func.grad`` of the whole). The model's buffers are copied first, so
    batch-norm statistics are not moved. A negative entry means that up-weighting that
    example would lower the validation loss. Lesson 06 teaches it.
    """
    params, buffers = _params_and_buffers(model)

    def weighted_train_loss(p, eps, b):
        logits = functional_call(model, (p, b), (X,))
        return (eps * F.cross_entropy(logits, y, reduction="none")).sum()

    def validation_loss(eps, b):
        grads = grad(weighted_train_loss)(params, eps, b)
        return F.cross_entropy(functional_call(model, (look_ahead(params, grads, lr), b), (X_val,)), y_val)

    eps = torch.zeros(len(y), device=y.device, dtype=next(iter(params.values())).dtype)
    return grad(validation_loss)(eps, buffers)  # buffers passed in: batch norm may update its copies


def rectify_and_normalize(u: torch.Tensor) -> torch.Tensor:
    """``max(u, 0)`` divided by its sum; an all-zero (or all-negative) ``u`` gives all zeros.

    ``u`` has shape ``(n,)``; so has the result, which sums to 1 unless it is all zero
    (step 4 of Algorithm 1, with ``u = -dL_val/d eps``). Lesson 06 teaches it.
    """
    w = torch.clamp(u, min=0)
    total = w.sum()
    return w / total if total > 0 else torch.zeros_like(w)


def example_weights(model: nn.Module, X, y, X_val, y_val, lr: float) -> torch.Tensor:
    """The learned weights of one training batch ``(X, y)``, shape ``(n,)``: steps 1-4 of Algorithm 1.
    Lesson 06 teaches it."""
    return rectify_and_normalize(-validation_gradient(model, X, y, X_val, y_val, lr))


def _forward_mode_step_parts(model: nn.Module, X, y, X_val, y_val, lr: float):
    """``dL_val/d eps``, the per-example training losses (still attached) and the logits, in one pass.

    At ``eps = 0`` the look-ahead parameters equal ``theta``, so by the chain rule
    ``dL_val/d eps_i = -lr * grad L_val(theta) . grad l_i(theta)``: the validation
    gradient ``v`` (one small backward pass), then every example's directional
    derivative along ``v`` from one forward-mode pass over the batch (a dual number
    per parameter). The same value as :func:`validation_gradient`, without
    differentiating through a gradient, and the forward pass is reused for the real step.
    """
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    val_loss = F.cross_entropy(functional_call(model, (dict(zip(names, params)), buffers), (X_val,)), y_val)
    v = torch.autograd.grad(val_loss, params)
    with fwAD.dual_level():
        duals = {name: fwAD.make_dual(p, t) for name, p, t in zip(names, params, v)}
        logits = functional_call(model, duals, (X,))
        losses, directional = fwAD.unpack_dual(F.cross_entropy(logits, y, reduction="none"))
        logits = fwAD.unpack_dual(logits).primal
    return -lr * directional.detach(), losses, logits.detach()


def reweighted_step(model: nn.Module, optimizer: torch.optim.Optimizer, X, y, X_val, y_val,
                    lr: float | None = None, method: str = "forward"):
    """One step of Algorithm 1: learn the batch's weights, then step ``optimizer`` on the weighted loss.

    ``lr`` is the look-ahead step size (default: the optimizer's learning rate; after
    normalization it cancels). ``method="look-ahead"`` computes ``dL_val/d eps`` with
    :func:`validation_gradient` (a gradient of a gradient); the default ``"forward"``
    computes the same numbers by the chain rule with one forward-mode pass that the
    real step reuses, about half the cost on a CPU (``tests/test_reweight.py`` checks
    that the two agree). Returns ``(weights, per_example_losses, logits)``, detached.
    Lesson 06 teaches it.
    """
    if lr is None:
        lr = optimizer.param_groups[0]["lr"]
    if method == "forward":
        dval_deps, losses, logits = _forward_mode_step_parts(model, X, y, X_val, y_val, lr)
        weights = rectify_and_normalize(-dval_deps)
    elif method == "look-ahead":
        weights = example_weights(model, X, y, X_val, y_val, lr).detach()
        logits = model(X)
        losses = F.cross_entropy(logits, y, reduction="none")
        logits = logits.detach()
    else:
        raise ValueError(f"method must be 'forward' or 'look-ahead', got {method!r}")
    optimizer.zero_grad(set_to_none=True)
    (weights * losses).sum().backward()
    optimizer.step()
    return weights, losses.detach(), logits


def fit_reweighted(model: nn.Module, train, val, test=None, *, batch_size: int = 100, method: str = "forward",
                   seed: int | None = 0, device=None, desc: str | None = None, **fit_kwargs) -> History:
    """Train ``model`` with learned example weights (Algorithm 1) and return its :class:`~noisylabels.History`.

    :func:`~noisylabels.fit` with :func:`reweighted_step` as its training step: ``train`` /
    ``test`` and the keyword arguments (``num_epochs``, ``lr``, ``optimizer``, ``momentum``,
    ``eval_train``, ...) are ``fit``'s. ``val`` is the small clean set: every step uses all
    of it when it has at most ``batch_size`` examples, else a random batch of that size.
    ``method`` is passed to :func:`reweighted_step`. Besides ``fit``'s per-epoch records, the
    history has ``example_weights``: an array ``(epochs, n)`` with the weight each training
    example got in each epoch, times the size of its batch (so 1 is a uniform weight, 0 a
    discarded example), and ``zero_weight_fraction`` per epoch. ``val`` is also what the
    history's ``val_acc`` records, for early stopping. Lesson 06 teaches it.
    """
    X_val, y_val = as_tensors(val, get_device(device))
    val_picker = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    batch_weights, epoch_weights = [], []

    def step(model, optimizer, X_batch, y_batch, index):
        xv, yv = X_val, y_val
        if len(y_val) > batch_size:
            pick = torch.randperm(len(y_val), generator=val_picker)[:batch_size].to(y_val.device)
            xv, yv = X_val[pick], y_val[pick]
        weights, losses, logits = reweighted_step(model, optimizer, X_batch, y_batch, xv, yv, method=method)
        batch_weights.append((index, weights * len(index)))
        return losses.mean(), logits

    def record_weights(epoch, history):
        weights = torch.zeros(sum(len(index) for index, _ in batch_weights), device=X_val.device)
        for index, w in batch_weights:
            weights[index] = w
        batch_weights.clear()
        epoch_weights.append(weights.cpu().numpy())
        history.setdefault("zero_weight_fraction", []).append(float((weights == 0).float().mean()))

    history = fit(model, train, test, batch_size=batch_size, seed=seed, device=device, step_fn=step, val=val,
                  on_epoch_end=record_weights, desc=desc or f"L2RW {type(model).__name__}", **fit_kwargs)
    history["example_weights"] = np.stack(epoch_weights)
    return history


# ----------------------------------------------------------------------------- the lesson's data
def noisy_digits_with_clean_val(noise_rate: float, num_val_per_class: int = 10, kind: str = "flip",
                                num_train: int | None = None, data=None, seed=0):
    """Ren et al.'s label-noise task on ten classes: noisy training labels, a tiny clean validation set.

    ``num_val_per_class`` training digits of each class are set aside with their clean
    labels; of the rest, ``num_train`` random digits (default: all) get
    :func:`~noisylabels.corrupt_labels` of ``kind`` at ``noise_rate``
    (``"flip"``: every chosen label becomes another class). Returns
    ``(X, y_noisy), (X_val, y_val), (X_test, y_test), y_true, is_mislabeled`` (tensors;
    ``y_true`` and ``is_mislabeled`` as numpy arrays).
    Lesson 06 uses it.
    """
    from .data import load_offline_mnist, to_tensors
    from .noise import corrupt_labels

    X_train, y_train, X_test, y_test = data if data is not None else load_offline_mnist()
    y_train = np.asarray(y_train)
    num_classes = int(y_train.max()) + 1
    rng = np.random.default_rng(seed)
    val_idx = np.concatenate([rng.choice(np.flatnonzero(y_train == k), num_val_per_class, replace=False)
                              for k in range(num_classes)])
    train_idx = rng.permutation(np.setdiff1d(np.arange(len(y_train)), val_idx))[:num_train]
    y_true = y_train[train_idx]
    y_noisy, is_mislabeled = corrupt_labels(y_true, noise_rate, num_classes, kind=kind,
                                            seed=int(rng.integers(2**31)))
    return (to_tensors(X_train[train_idx], y_noisy), to_tensors(X_train[val_idx], y_train[val_idx]),
            to_tensors(X_test, y_test), y_true, is_mislabeled)


# ----------------------------------------------------------------------------- the lesson's experiments
#: The ways :func:`imbalance_errors` trains on the imbalanced task (lesson 06's figure). The last is
#: the fair baseline: resampling that also trains on the clean validation images L2RW uses.
IMBALANCE_METHODS = ("baseline", "resampling", "class weights", "L2RW", "resampling + clean")


def imbalance_errors(proportion: float, seed: int = 0, *, num_steps: int = 300, methods=IMBALANCE_METHODS,
                     noise_rate: float = 0.0, lr: float = 0.01, batch_size: int = 100, momentum: float = 0.9,
                     num_majority: int | None = None, model: str = "cnn", data=None, progress: bool = False) -> dict:
    """Balanced test error of a fresh model trained each of ``methods`` ways on
    :func:`~noisylabels.imbalanced_pair` at one ``proportion`` and ``seed``, as ``{method: error}``.

    Every method gets about ``num_steps`` SGD steps (momentum ``momentum``, batches of
    ``batch_size``): plain cross-entropy (``"baseline"``), the rare class over-sampled
    (``"resampling"``), inverse-frequency class weights (``"class weights"``), learning to
    reweight with the clean validation set (``"L2RW"``) and, the fair baseline, over-sampling
    of the training set *plus* those clean validation images (``"resampling + clean"``).
    With ``noise_rate`` that share of the training labels (not the validation labels) is
    swapped first (lesson 05's "both" scenario: a rare class and wrong labels). ``model`` is
    a :func:`~noisylabels.make_model` name (``"cnn"``, the paper's LeNet, or ``"mlp"``).
    Lesson 06's sweep and ``benchmarks/reweight.py`` call it.
    """
    from .noise import corrupt_labels

    (X, y), (X_val, y_val), (X_test, y_test) = imbalanced_pair(proportion, num_majority=num_majority, data=data,
                                                               seed=seed)
    if noise_rate:
        y = corrupt_labels(y, noise_rate, 2, kind="flip", seed=seed + 1000)[0]
    settings = dict(lr=lr, batch_size=batch_size, momentum=momentum, seed=seed, eval_train=False, progress=progress)

    def epochs(n):
        return max(1, round(num_steps / int(np.ceil(n / batch_size))))

    idx = oversample_indices(y, seed=seed)
    X_all, y_all = torch.cat([X, X_val]), torch.cat([y, y_val])
    idx_all = oversample_indices(y_all, seed=seed)
    runs = {
        "baseline": lambda model: fit(model, (X, y), num_epochs=epochs(len(y)), **settings),
        "resampling": lambda model: fit(model, (X[idx], y[idx]), num_epochs=epochs(len(idx)), **settings),
        "class weights": lambda model: fit(
            model, (X, y), num_epochs=epochs(len(y)), **settings,
            sample_weights=example_weights_from_classes(y, class_weights_from_frequencies(y, 2))),
        "L2RW": lambda model: fit_reweighted(model, (X, y), (X_val, y_val), num_epochs=epochs(len(y)), **settings),
        "resampling + clean": lambda model: fit(model, (X_all[idx_all], y_all[idx_all]),
                                                num_epochs=epochs(len(idx_all)), **settings),
    }
    unknown = set(methods) - set(runs)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {IMBALANCE_METHODS}")
    errors = {}
    for method in methods:
        seed_everything(seed)
        net = make_model(model, tuple(X.shape[1:]), 2)
        runs[method](net)
        errors[method] = balanced_error(predict_proba(net, X_test), y_test)
    return errors


#: The trainings :func:`noise_accuracies` compares under label noise (lesson 06).
NOISE_METHODS = ("baseline", "baseline + clean", "L2RW")


def noise_accuracies(noise_rate: float, seed: int = 0, *, kind: str = "flip", num_val_per_class: int = 10,
                     num_train: int | None = 2000, num_epochs: int = 25, lr: float = 2e-3, batch_size: int = 100,
                     methods=NOISE_METHODS, clean_counts=(), model: str = "cnn", data=None,
                     progress: bool = False) -> dict:
    """Lesson 06's label-noise comparison on :func:`noisy_digits_with_clean_val`, with fair baselines.

    A fresh ``model`` per method (a :func:`~noisylabels.make_model` name: ``"cnn"``, a LeNet, or
    ``"mlp"``), Adam at ``lr``, ``num_epochs`` epochs, batches of ``batch_size``:
    plain cross-entropy on the noisy labels (``"baseline"``), the same on the noisy labels
    *plus* the clean validation images (``"baseline + clean"``), and learning to reweight with
    them (``"L2RW"``). Returns ``{"final": {method: test accuracy}, "early_stopped": {method:
    test accuracy at the epoch of best clean-validation accuracy}, "mean_weight_clean",
    "mean_weight_corrupted", "histories", "is_mislabeled"}``; ``"baseline + clean"`` trains on
    the validation images, so it has no early-stopped figure, and the mean weights (L2RW's,
    times the batch size, over the last three epochs) are NaN without L2RW.

    ``clean_counts`` (each below ``num_val_per_class``) asks how the two methods that use the
    clean images fare with fewer of them, on the same noisy training set: for each ``k``,
    L2RW trains again with only the first ``k`` clean images of each class, and the baseline's
    early stopping is read on those ``k`` a class from its per-epoch predictions on every
    clean image (no retraining). The result then has ``"by_clean_count": {k: {"L2RW": final
    test accuracy, "early_stopped": the baseline's}}`` (needs ``"baseline"`` and ``"L2RW"`` in
    ``methods``). Lesson 06 and ``benchmarks/reweight.py`` call it.
    """
    unknown = set(methods) - set(NOISE_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {NOISE_METHODS}")
    clean_counts = tuple(clean_counts)
    if clean_counts and not ({"baseline", "L2RW"} <= set(methods)
                             and all(0 < k < num_val_per_class for k in clean_counts)):
        raise ValueError(f"clean_counts {clean_counts} need 'baseline' and 'L2RW' in methods and counts between 1 "
                         f"and num_val_per_class - 1 = {num_val_per_class - 1}")
    (X, y_noisy), val, test, _, is_mislabeled = noisy_digits_with_clean_val(
        noise_rate, num_val_per_class=num_val_per_class, kind=kind, num_train=num_train, data=data, seed=seed)
    settings = dict(num_epochs=num_epochs, lr=lr, optimizer="adam", batch_size=batch_size, seed=seed,
                    eval_train=False, progress=progress)
    in_shape, num_classes = tuple(X.shape[1:]), len(val[1].unique())
    histories, val_correct = {}, []
    for method in methods:
        seed_everything(seed)
        net = make_model(model, in_shape, num_classes)
        if method == "baseline":
            record = _record_clean_predictions(net, val, val_correct) if clean_counts else None
            histories[method] = fit(net, (X, y_noisy), test, val=val, desc=method, on_epoch_end=record, **settings)
        elif method == "baseline + clean":
            train = (torch.cat([X, val[0]]), torch.cat([y_noisy, val[1]]))
            histories[method] = fit(net, train, test, desc=method, **settings)
        else:
            histories[method] = fit_reweighted(net, (X, y_noisy), val, test, desc=method, **settings)
    weights = histories["L2RW"].example_weights[-3:].mean(axis=0) if "L2RW" in histories else None
    result = {
        "final": {m: float(h.test_acc[-1]) for m, h in histories.items()},
        "early_stopped": {m: float(h.early_stopped()) for m, h in histories.items() if "val_acc" in h},
        "mean_weight_clean": float(weights[~is_mislabeled].mean()) if weights is not None else float("nan"),
        "mean_weight_corrupted": float(weights[is_mislabeled].mean()) if weights is not None else float("nan"),
        "histories": histories,
        "is_mislabeled": is_mislabeled,
    }
    if clean_counts:
        correct, test_acc = np.stack(val_correct), histories["baseline"].test_acc    # (epochs, clean images)
        result["by_clean_count"] = {}
        for k in clean_counts:
            subset = _first_per_class(val[1], k)
            seed_everything(seed)
            l2rw = fit_reweighted(make_model(model, in_shape, num_classes), (X, y_noisy), (val[0][subset], val[1][subset]),
                                  test, desc=f"L2RW, {k} clean a class", **settings)
            best = int(np.argmax(correct[:, subset].mean(axis=1)))                     # first best epoch on ties
            result["by_clean_count"][k] = {"L2RW": float(l2rw.test_acc[-1]), "early_stopped": float(test_acc[best])}
    return result


def _first_per_class(y, k: int) -> np.ndarray:
    """Positions of the first ``k`` examples of each class in ``y``, in order (a smaller clean set)."""
    y = np.asarray(y.cpu() if torch.is_tensor(y) else y)
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in np.unique(y)]))


def _record_clean_predictions(model, val, out: list):
    """An ``on_epoch_end`` hook for :func:`~noisylabels.fit`: whether ``model`` gets each clean image right."""
    X_val, y_val = val

    def record(epoch, history):
        out.append((predict_proba(model, X_val).argmax(1) == np.asarray(y_val.cpu())))
    return record


def reweighted_step_seconds(repeats: int = 30, warmup: int = 3, seed: int = 0, num_threads: int | None = 1) -> dict:
    """Median seconds of a plain SGD step and of a reweighted step, ``{"plain", "forward", "look-ahead"}``.

    A LeNet, a training batch of 100 and 100 validation images (random inputs); the three
    steps run interleaved, ``warmup`` rounds untimed, then ``repeats`` timed, on
    ``num_threads`` threads (None: as set). ``"forward"`` is :func:`reweighted_step`'s
    default, ``"look-ahead"`` the literal gradient through a gradient. Lesson 06 and
    ``benchmarks/reweight.py`` call it.
    """
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        seed_everything(seed)
        X, y = torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,))
        X_val, y_val = torch.randn(100, 1, 28, 28), torch.arange(100) % 10
        model = LeNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def plain():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(X), y).backward()
            opt.step()

        steps = {"plain": plain,
                 "forward": lambda: reweighted_step(model, opt, X, y, X_val, y_val),
                 "look-ahead": lambda: reweighted_step(model, opt, X, y, X_val, y_val, method="look-ahead")}
        times = {name: [] for name in steps}
        for _ in range(warmup):
            for step in steps.values():
                step()
        for _ in range(repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        return {name: float(np.median(t)) for name, t in times.items()}
    finally:
        torch.set_num_threads(threads)
