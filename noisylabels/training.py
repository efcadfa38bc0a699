"""A small training loop that records what the lessons plot.

Taught in lesson 01 (label noise and memorization), used by every later lesson:
:func:`fit` trains a classifier on tensors or a map-style dataset, records per-epoch
train / test loss and accuracy (and, on request, every training example's loss),
shows a notebook-aware progress bar, seeds everything and uses CUDA when present.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .results import Results

__all__ = [
    "seed_everything",
    "get_device",
    "as_tensors",
    "History",
    "fit",
    "evaluate",
    "predict_proba",
    "per_example_losses",
    "run_size",
    "start_notebook",
]


def run_size(default: str = "default") -> str:
    """How big a lesson's experiments are: ``"quick"``, ``"default"`` or ``"full"``.

    Read from the environment variable ``NOISYLABELS_SIZE`` (CI sets ``quick`` to
    smoke-test the notebooks; ``full`` runs full MNIST / CIFAR-10 where present).
    A lesson can also set its ``SIZE`` variable by hand.
    """
    size = os.environ.get("NOISYLABELS_SIZE", default).strip().lower() or default
    if size not in ("quick", "default", "full"):
        raise ValueError(f"NOISYLABELS_SIZE must be quick, default or full, got {size!r}")
    return size


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that a run repeats. Lesson 01 teaches it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def start_notebook(seed: int = 0, num_threads: int | None = None, size: str | None = None) -> str:
    """The one call in every lesson's and homework's Setup cell; returns ``SIZE``.

    Seeds everything with ``seed``, reads the run size (``size`` if given, else
    :func:`run_size`), sets PyTorch's thread count when ``num_threads`` is given (else
    keeps what ``noisylabels lab`` / ``OMP_NUM_THREADS`` chose) and prints the four.
    """
    size = size or run_size()
    if size not in ("quick", "default", "full"):
        raise ValueError(f"size must be quick, default or full, got {size!r}")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    seed_everything(seed)
    print(f"size: {size} | device: {get_device()} | threads: {torch.get_num_threads()} | seed: {seed}")
    return size


def get_device(device=None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU. Lesson 01 teaches it."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_tensors(data, device=None):
    """``(X, y)`` as a float tensor and an int64 tensor on ``device``.

    ``data`` is a pair of arrays / tensors, or a map-style dataset of ``(x, y)``
    (read once, in order), for example a :class:`~noisylabels.MislabeledDataset`.
    Lesson 01 teaches it.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        items = [data[i] for i in range(len(data))]
        X = torch.stack([torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x) for x, _ in items])
        y = torch.as_tensor([int(t) for _, t in items])
    X = torch.as_tensor(X) if torch.is_tensor(X) else torch.as_tensor(np.asarray(X))
    y = torch.as_tensor(y) if torch.is_tensor(y) else torch.as_tensor(np.asarray(y))
    X = X.float()
    y = y.long()
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels")
    dev = get_device(device)
    return X.to(dev), y.to(dev)


class History(Results):
    """Per-epoch records of :func:`fit` (a :class:`~noisylabels.results.Results`): lists under
    ``epoch``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``, ``lr`` and ``seconds``;
    with ``record_example_losses`` also ``example_losses`` (array ``(epochs, n)``).
    Keys read as attributes too: ``history.test_acc[-1]``. With a held-out ``val`` set
    ``fit`` also records ``val_loss`` and ``val_acc``. Lesson 01 teaches it.
    """

    def epochs_to_fit(self, threshold: float = 0.99):
        """First epoch (1-based) at which training accuracy reached ``threshold``, else None."""
        return self.first_reached("train_acc", threshold, at="epoch")

    def best_epoch(self, by: str = "val_acc") -> int:
        """The epoch (1-based) with the highest ``by``, the first one on ties: where early stopping
        on a held-out set stops. Lesson 04 teaches it as the fair baseline."""
        if by not in self:
            raise KeyError(f"no {by!r} records: pass val=(X_val, y_val) to fit to early-stop on it")
        return self["epoch"][int(np.argmax(self[by]))]

    def early_stopped(self, key: str = "test_acc", by: str = "val_acc") -> float:
        """``key`` at :meth:`best_epoch`: e.g. the test accuracy of the model early stopping would keep."""
        return self[key][self["epoch"].index(self.best_epoch(by))]


@torch.no_grad()
def _logits(model, X, batch_size):
    model.eval()
    return torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])


@torch.no_grad()
def evaluate(model, data, batch_size: int = 1000, device=None):
    """Mean cross-entropy and accuracy of ``model`` on ``data`` (``(X, y)`` or a dataset). Lesson 01 teaches it."""
    X, y = as_tensors(data, device or next(model.parameters()).device)
    logits = _logits(model, X, batch_size)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@torch.no_grad()
def predict_proba(model, X, batch_size: int = 1000):
    """Softmax probabilities of ``model`` on ``X`` as a numpy array ``(n, num_classes)``. Lesson 01 teaches it."""
    dev = next(model.parameters()).device
    X = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X).float().to(dev)
    return torch.softmax(_logits(model, X, batch_size), 1).cpu().numpy()


@torch.no_grad()
def per_example_losses(model, data, batch_size: int = 1000):
    """Cross-entropy of every example of ``data`` under ``model``, as a numpy array. Lesson 01 teaches it."""
    X, y = as_tensors(data, next(model.parameters()).device)
    return F.cross_entropy(_logits(model, X, batch_size), y, reduction="none").cpu().numpy()


def _record_epoch(history, model, epoch, train, test, start, batch_stats=None, keep_losses=False):
    """Append one epoch's records to ``history``: loss and accuracy on the whole training set
    (or, given ``batch_stats = (loss_sum, seen, correct)``, the running figures of the epoch's
    batches) and on ``test``. Returns the per-example training losses when ``keep_losses``."""
    X, y = train
    X_test, y_test = test
    losses = None
    if batch_stats is None:
        logits = _logits(model, X, 1000)
        losses = F.cross_entropy(logits, y, reduction="none")
        train_loss, train_acc = losses.mean().item(), (logits.argmax(1) == y).float().mean().item()
    else:
        running, seen, correct = batch_stats
        train_loss, train_acc = running / seen, correct / seen
    if X_test is not None:
        logits = _logits(model, X_test, 1000)
        test_loss = F.cross_entropy(logits, y_test).item()
        test_acc = (logits.argmax(1) == y_test).float().mean().item()
    else:
        test_loss = test_acc = float("nan")
    history["epoch"].append(epoch)
    history["train_loss"].append(train_loss)
    history["train_acc"].append(train_acc)
    history["test_loss"].append(test_loss)
    history["test_acc"].append(test_acc)
    history["seconds"].append(time.perf_counter() - start)
    if not np.isfinite(train_loss):
        raise FloatingPointError(f"training diverged at epoch {epoch} (loss {train_loss}); lower lr")
    return losses.cpu().numpy() if (keep_losses and losses is not None) else None


def _make_optimizer(name, params, lr, momentum, weight_decay):
    if isinstance(name, torch.optim.Optimizer):
        return name
    if callable(name):
        return name(params)
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    # fused: one pass over each parameter instead of a dozen tensor ops; the same update, and on
    # one CPU thread an epoch of lesson 02's MLP takes 0.13 s instead of 0.19 s (benchmarks/course_build.py)
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) or None
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"optimizer must be 'sgd', 'adam', 'adamw', an optimizer or a factory, got {name!r}")


# ----------------------------------------------------------------------------- progress bars
def progress_bar(total: int, desc: str, progress: bool = True, **kwargs):
    """A ``tqdm.auto`` bar for a training loop (a widget in JupyterLab, text in a terminal).

    Update it by hand (``bar.update(1)``) and end it with :func:`finish_progress`: a bar
    iterated with ``for step in bar`` and left by ``break`` is closed part-way by tqdm
    itself, which JupyterLab shows as a red, failed bar.
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, disable=not progress, **kwargs)


def finish_progress(bar, stopped: str | None = None) -> None:
    """Close ``bar`` so that it reads as finished.

    A loop that ran its full count closes as usual (a ``leave=False`` bar disappears).
    A loop that ended early by design passes the reason as ``stopped`` (say
    ``"stopped: train acc 0.990 reached"``): the bar's total becomes the count reached,
    the reason is appended to its postfix and the bar stays, complete (green in
    JupyterLab), instead of a red bar frozen part-way.
    """
    if getattr(bar, "disable", False):
        bar.close()
        return
    if stopped:
        if bar.total is not None and bar.n < bar.total:
            bar.total = bar.n
            container = getattr(bar, "container", None)  # tqdm.notebook: the ipywidgets bar
            if container is not None:
                container.children[1].max = max(bar.n, 1)
        bar.set_postfix_str(f"{bar.postfix}, {stopped}" if bar.postfix else stopped, refresh=False)
        bar.leave = True
    bar.refresh()
    bar.close()


def fit(
    model: nn.Module,
    train,
    test=None,
    *,
    num_epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 128,
    optimizer="sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_decay: float | None = None,
    loss_fn=None,
    sample_weights=None,
    seed: int | None = 0,
    device=None,
    progress: bool = True,
    record_example_losses: bool = False,
    eval_train: bool = True,
    stop_at_train_acc: float | None = None,
    desc: str | None = None,
    step_fn=None,
    on_epoch_end=None,
    val=None,
) -> History:
    """Train ``model`` with mini-batches and return its :class:`History`.

    ``train`` / ``test`` are ``(X, y)`` pairs or map-style datasets. The optimizer is
    SGD with ``momentum`` by default (or ``"adam"``, ``"adamw"``, an optimizer, or a
    factory ``params -> optimizer``); ``lr_decay=0.95`` multiplies the learning rate by
    0.95 after every epoch, as Zhang et al. do. ``loss_fn(logits, y)`` returns the
    batch loss (cross-entropy by default); if it has a ``set_epoch(epoch)`` method it
    is called before each epoch (for schedules such as co-teaching's). With
    ``sample_weights`` (one per training example) the batch loss is the weighted mean
    of the per-example cross-entropies. After each epoch the model is evaluated on the
    whole training set (on the labels it was trained with) unless ``eval_train=False``,
    and on ``test``; ``stop_at_train_acc`` ends training once training accuracy reaches
    it.

    Two hooks let a method change the training step without a loop of its own (lesson 06's
    learning to reweight is :func:`~noisylabels.fit_reweighted`, a few lines on top of them):
    ``step_fn(model, optimizer, X_batch, y_batch, index)`` replaces the default step
    (forward, loss, backward, optimizer step) and returns the batch's mean loss and its
    logits, both detached (``index``: the batch's positions in the training set);
    ``on_epoch_end(epoch, history)`` is called after each epoch's records.
    ``val``, a held-out ``(X, y)`` pair with clean labels, is evaluated after every epoch too
    (``val_loss``, ``val_acc``), so that :meth:`History.early_stopped` can say what early
    stopping on it would have kept (lesson 04's fair baseline).
    Lesson 01 teaches it.
    """
    if seed is not None:
        seed_everything(seed)
    dev = get_device(device)
    model.to(dev)
    X, y = as_tensors(train, dev)
    X_test, y_test = as_tensors(test, dev) if test is not None else (None, None)
    val = as_tensors(val, dev) if val is not None else None
    if sample_weights is not None:
        sample_weights = torch.as_tensor(np.asarray(sample_weights) if not torch.is_tensor(sample_weights)
                                         else sample_weights).float().to(dev)
        if len(sample_weights) != len(y):
            raise ValueError(f"sample_weights has {len(sample_weights)} entries for {len(y)} examples")
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    opt = _make_optimizer(optimizer, model.parameters(), lr, momentum, weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, lr_decay) if lr_decay else None
    history = History(epoch=[], train_loss=[], train_acc=[], test_loss=[], test_acc=[], lr=[], seconds=[])
    example_losses = []
    generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed())

    def default_step(model, optimizer, X_batch, y_batch, index):
        logits = model(X_batch)
        if sample_weights is not None:
            weights = sample_weights[index]
            losses = F.cross_entropy(logits, y_batch, reduction="none")
            loss = (weights * losses).sum() / weights.sum().clamp_min(1e-12)
        else:
            loss = loss_fn(logits, y_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), logits.detach()

    step_fn = step_fn or default_step

    bar = progress_bar(num_epochs, desc or type(model).__name__, progress, unit="epoch")
    stopped = None
    start = time.perf_counter()
    for epoch in range(1, num_epochs + 1):
        if hasattr(loss_fn, "set_epoch"):
            loss_fn.set_epoch(epoch)
        model.train()
        order = torch.randperm(len(X), generator=generator).to(dev)
        running, seen, correct = 0.0, 0, 0
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            loss, logits = step_fn(model, opt, X[idx], y[idx], idx)
            running += loss.item() * len(idx)
            seen += len(idx)
            correct += (logits.argmax(1) == y[idx]).sum().item()
        history["lr"].append(opt.param_groups[0]["lr"])
        if sched is not None:
            sched.step()
        losses = _record_epoch(history, model, epoch, (X, y), (X_test, y_test), start,
                               None if (eval_train or record_example_losses) else (running, seen, correct),
                               keep_losses=record_example_losses)
        if record_example_losses:
            example_losses.append(losses)
        if val is not None:
            val_loss, val_acc = evaluate(model, val)
            history.setdefault("val_loss", []).append(val_loss)
            history.setdefault("val_acc", []).append(val_acc)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        bar.set_postfix(train_acc=f"{history['train_acc'][-1]:.3f}", test_acc=f"{history['test_acc'][-1]:.3f}",
                        refresh=False)
        bar.update(1)
        train_acc = history["train_acc"][-1]
        if stop_at_train_acc is not None and train_acc >= stop_at_train_acc:
            if epoch < num_epochs:
                stopped = f"stopped: train acc {stop_at_train_acc:g} reached"
            break
    finish_progress(bar, stopped)
    if record_example_losses:
        history["example_losses"] = np.stack(example_losses)
    return history
