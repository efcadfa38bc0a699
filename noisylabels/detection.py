"""Finding the mislabeled examples: training signals, out-of-sample votes, confident
learning and evil twins.

Lesson 02 ("Finding the mislabeled examples", the lesson that prepares homework 2)
teaches every function here:

- signals recorded while a network trains on the noisy labels: the final loss, the
  early loss, the whole loss trajectory and the area under the margin (Pleiss et al.
  2020), each turned into a *suspicion score* (higher = more likely mislabeled);
- out-of-sample predicted probabilities: cross-validation, and voting over many
  random two-thirds subsets;
- confident learning (Northcutt, Jiang, Chuang 2021) in small steps (per-class
  thresholds, the confident joint, the flagged off-diagonal examples ranked by
  self-confidence) that agree with ``cleanlab.filter.find_label_issues``;
- evil twins: planting copies with a wrong label, finding (near-)duplicates with a
  shift-tolerant distance, and judging which twin's label is wrong;
- scoring a ranking against planted errors (precision / recall at the true count,
  the precision-recall curve, AUROC) and retraining on the cleaned labels.

Every score function returns one number an example, larger meaning more suspicious,
so that all methods are ranked and compared the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .models import MLP
from .training import as_tensors, fit, predict_proba, seed_everything

__all__ = [
    "train_classifier",
    "label_margins",
    "TrainingSignals",
    "record_training_signals",
    "final_loss_scores",
    "early_loss_scores",
    "loss_trajectory_scores",
    "aum_scores",
    "cross_val_pred_probs",
    "SubsetVotes",
    "subset_votes",
    "self_confidence",
    "per_class_thresholds",
    "confident_joint",
    "confident_learning_issues",
    "calibrate_confident_joint",
    "estimate_joint",
    "estimated_num_errors",
    "prune_by_noise_rate",
    "rank_by_self_confidence",
    "precision_recall_at_k",
    "precision_recall_curve_points",
    "ranking_report",
    "retrain_test_accuracy",
    "flag_scores",
    "lookalike_noise",
    "noisy_labels",
    "NOISE_FAMILIES",
    "self_confidence_by_epoch",
    "aum_threshold_samples",
    "plant_and_recover",
    "retrain_comparison",
    "EvilTwinFile",
    "plant_evil_twins",
    "exact_duplicate_groups",
    "shift_tolerant_distances",
    "duplicate_pairs",
    "judge_twin_pairs",
]


# --------------------------------------------------------------------------- training


def _in_features(X) -> int:
    return int(np.prod(np.asarray(X.shape[1:])))


def train_classifier(X, y, *, hidden=(256,), num_epochs: int = 12, lr: float = 1e-3,
                     batch_size: int = 128, seed: int = 0, num_classes: int = 10, progress: bool = False,
                     desc: str | None = None):
    """A fresh :class:`~noisylabels.MLP` trained on ``(X, y)`` with Adam; returns the model.

    The one recipe lesson 02 uses for every out-of-sample prediction and every retrain:
    a short run (12 epochs by default), so that the network has learned the clean
    structure but not yet memorized many wrong labels.
    """
    seed_everything(seed)
    model = MLP(_in_features(X), tuple(hidden), num_classes)
    fit(model, (X, y), num_epochs=num_epochs, lr=lr, optimizer="adam", batch_size=batch_size,
        seed=seed, progress=progress, eval_train=False, desc=desc)
    return model


def label_margins(logits, labels):
    """Area-under-the-margin's margin: the logit of the given label minus the largest other
    logit (Pleiss et al. 2020). Negative when the network prefers another class.

    ``logits`` ``(n, C)`` and ``labels`` ``(n,)``, tensors or arrays; returns ``(n,)``
    of the same kind. Lesson 02 teaches it.
    """
    is_numpy = not torch.is_tensor(logits)
    logits_t = torch.as_tensor(np.asarray(logits)) if is_numpy else logits
    labels_t = torch.as_tensor(np.asarray(labels)) if not torch.is_tensor(labels) else labels
    labels_t = labels_t.long().to(logits_t.device)
    given = logits_t.gather(1, labels_t[:, None])[:, 0]
    others = logits_t.scatter(1, labels_t[:, None], float("-inf"))
    margin = given - others.max(1).values
    return margin.cpu().numpy() if is_numpy else margin


@dataclass
class TrainingSignals:
    """What :func:`record_training_signals` saw after every epoch, on every training example.

    ``losses`` and ``margins`` have shape ``(num_epochs, n)``; ``train_acc`` (against the
    labels trained on) and ``test_acc`` (clean test labels, NaN without a test set) one
    value an epoch. Lesson 02 teaches it.
    """

    losses: np.ndarray
    margins: np.ndarray
    train_acc: list
    test_acc: list


def record_training_signals(X, y, X_test=None, y_test=None, *, hidden=(256,), num_epochs: int = 30,
                            lr: float = 0.05, batch_size: int = 64, optimizer: str = "sgd",
                            momentum: float = 0.9, seed: int = 0, num_classes: int = 10,
                            progress: bool = False, desc: str | None = None) -> TrainingSignals:
    """Train an :class:`~noisylabels.MLP` on ``(X, y)`` (all of it, noisy labels included) and
    record every example's loss and margin after each epoch (lesson 02, "signals from training").

    One margin an example an epoch, as in Pleiss et al.'s code (which records it when the
    example's mini-batch is trained; here it is read at the end of the epoch).
    """
    seed_everything(seed)
    model = MLP(_in_features(X), tuple(hidden), num_classes)
    X_t, y_t = as_tensors((X, y))
    losses, margins, train_acc = [], [], []

    def record(epoch, history):
        with torch.no_grad():
            logits = torch.cat([model(X_t[i:i + 1000]) for i in range(0, len(X_t), 1000)])
        losses.append(F.cross_entropy(logits, y_t, reduction="none").cpu().numpy())
        margins.append(label_margins(logits, y_t).cpu().numpy())
        train_acc.append((logits.argmax(1) == y_t).float().mean().item())

    history = fit(model, (X_t, y_t), (X_test, y_test) if X_test is not None else None, num_epochs=num_epochs,
                  lr=lr, batch_size=batch_size, optimizer=optimizer, momentum=momentum, seed=seed,
                  device=X_t.device, progress=progress, eval_train=False, on_epoch_end=record,
                  desc=desc or "training signals")
    return TrainingSignals(np.stack(losses), np.stack(margins), train_acc, list(history.test_acc))


def final_loss_scores(losses) -> np.ndarray:
    """Suspicion from the loss after the last epoch (``losses``: ``(epochs, n)``). Lesson 02 teaches it."""
    return np.asarray(losses)[-1]


def early_loss_scores(losses, num_epochs: int = 3) -> np.ndarray:
    """Suspicion from the mean loss over the first ``num_epochs`` epochs, before memorization
    (the early-learning effect of lesson 01)."""
    return np.asarray(losses)[:num_epochs].mean(0)


def loss_trajectory_scores(losses) -> np.ndarray:
    """Suspicion from the whole loss trajectory: the area under each example's loss curve
    (its mean over epochs). Lesson 02 teaches it."""
    return np.asarray(losses).mean(0)


def aum_scores(margins) -> np.ndarray:
    """Suspicion from the area under the margin: minus each example's margin averaged over
    epochs (Pleiss et al. 2020; mislabeled examples have low, often negative, AUM). Lesson 02 teaches it."""
    return -np.asarray(margins).mean(0)


# ------------------------------------------------------------------ out-of-sample


def cross_val_pred_probs(X, y, *, num_folds: int = 5, groups=None, seed: int = 0, num_classes: int = 10,
                         progress: bool = False, **train_kwargs) -> np.ndarray:
    """Out-of-sample predicted probabilities ``(n, num_classes)``: each example's row comes
    from a :func:`train_classifier` model that never saw it.

    Folds are stratified by the given labels; with ``groups`` (one id an example) the
    members of a group always share a fold (lesson 02 puts the twins of a duplicate
    pair in one group, so neither is judged by a model that learned the other's label).
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from tqdm.auto import tqdm

    y = np.asarray(y)
    pred_probs = np.zeros((len(y), num_classes), dtype=np.float64)
    if groups is None:
        splits = StratifiedKFold(num_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        splits = StratifiedGroupKFold(num_folds, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y, groups)
    for fold, (train_idx, held_idx) in enumerate(tqdm(list(splits), desc="folds", disable=not progress,
                                                      leave=False)):
        model = train_classifier(X[train_idx], y[train_idx], seed=seed + fold, num_classes=num_classes,
                                 **train_kwargs)
        pred_probs[held_idx] = predict_proba(model, X[held_idx])
    return pred_probs


@dataclass
class SubsetVotes:
    """What :func:`subset_votes` counted for every example.

    ``votes``: runs in which the example was held out and predicted as another class than
    its label; ``held_out``: runs in which it was held out; ``pred_probs``: its mean held-out
    predicted probabilities (an ensemble's out-of-sample prediction); ``label_confidence``:
    that ensemble's probability of the given label. Lesson 02 teaches it.
    """

    votes: np.ndarray
    held_out: np.ndarray
    pred_probs: np.ndarray
    label_confidence: np.ndarray

    @property
    def vote_fraction(self) -> np.ndarray:
        """The fraction of held-out runs that disagreed with the label."""
        return self.votes / np.maximum(self.held_out, 1)

    @property
    def scores(self) -> np.ndarray:
        """Suspicion score: the vote fraction, ties (with few runs, many digits get every vote)
        broken by the ensemble's probability of the given label."""
        return self.vote_fraction + 1e-3 * (1 - self.label_confidence)


def subset_votes(X, y, *, num_runs: int = 12, train_fraction: float = 2 / 3, seed: int = 0,
                 num_classes: int = 10, progress: bool = False, **train_kwargs) -> SubsetVotes:
    """Train ``num_runs`` models, each on a random ``train_fraction`` of the data, and count, for
    every example, how often a model that did *not* train on it predicted another class.

    Lesson 02: the advice for homework 2, "train on random two-thirds subsets many times
    and count the misclassifications". The subsets come in rounds: each round shuffles the
    data into ``1 / (1 - train_fraction)`` parts (3 for two-thirds) and holds out each part
    once, so that with ``num_runs`` a multiple of 3 every example is held out equally often
    (purely random subsets leave some examples never held out).
    """
    from tqdm.auto import tqdm

    y = np.asarray(y)
    n = len(y)
    num_parts = max(2, int(round(1 / (1 - train_fraction))))
    rng = np.random.default_rng(seed)
    votes = np.zeros(n, dtype=np.int64)
    held_out = np.zeros(n, dtype=np.int64)
    prob_sum = np.zeros((n, num_classes))
    for run in tqdm(range(num_runs), desc="subsets", disable=not progress, leave=False):
        if run % num_parts == 0:
            parts = np.array_split(rng.permutation(n), num_parts)
        held = np.sort(parts[run % num_parts])
        in_train = np.ones(n, dtype=bool)
        in_train[held] = False
        model = train_classifier(X[in_train], y[in_train], seed=seed + 1000 + run, num_classes=num_classes,
                                 **train_kwargs)
        probs = predict_proba(model, X[held])
        votes[held] += probs.argmax(1) != y[held]
        held_out[held] += 1
        prob_sum[held] += probs
    pred_probs = np.where(held_out[:, None] > 0, prob_sum / np.maximum(held_out, 1)[:, None], 1.0 / num_classes)
    return SubsetVotes(votes, held_out, pred_probs, self_confidence(pred_probs, y))


# ---------------------------------------------------------------- confident learning


def self_confidence(pred_probs, labels) -> np.ndarray:
    """``pred_probs[i, labels[i]]``: the predicted probability of each example's given label.
    Lesson 02 teaches it."""
    pred_probs = np.asarray(pred_probs)
    return pred_probs[np.arange(len(pred_probs)), np.asarray(labels)]


def per_class_thresholds(pred_probs, labels) -> np.ndarray:
    """Confident learning's thresholds ``t[k]``: the mean ``pred_probs[:, k]`` over the examples
    labeled ``k``. Shape ``(num_classes,)``; a class without examples gets 2 (never reached).
    Lesson 02 teaches it."""
    pred_probs, labels = np.asarray(pred_probs), np.asarray(labels)
    t = np.array([pred_probs[labels == k, k].mean() if np.any(labels == k) else 2.0
                  for k in range(pred_probs.shape[1])])
    return np.clip(t, 2e-6, None)  # cleanlab's lower bound


def _confident_guess(pred_probs, thresholds, rule: str = "cleanlab"):
    """Which examples clear at least one class threshold, and their guessed true class: the
    one class they clear; when they clear several, ``rule="cleanlab"`` takes the argmax over
    *all* classes (what cleanlab counts), ``rule="paper"`` the most probable class among those
    that clear their thresholds (Northcutt et al. 2021, Eq. 1)."""
    if rule not in ("cleanlab", "paper"):
        raise ValueError(f"rule must be 'cleanlab' or 'paper', got {rule!r}")
    confident = pred_probs >= thresholds - 1e-6  # (n, C) bool
    num_confident = confident.sum(1)
    best = pred_probs.argmax(1) if rule == "cleanlab" else np.where(confident, pred_probs, -1.0).argmax(1)
    guess = np.where(num_confident > 1, best, confident.argmax(1))
    return num_confident > 0, guess


def confident_joint(pred_probs, labels, thresholds=None, rule: str = "cleanlab") -> np.ndarray:
    """The (uncalibrated) confident joint ``C[i, j]``: examples labeled ``i`` whose guessed true
    class is ``j`` (shape ``(C, C)``; the diagonal is clipped to at least 1, as in cleanlab).
    ``rule`` settles an example that clears several thresholds (see :func:`_confident_guess`).
    Lesson 02 teaches it."""
    pred_probs, labels = np.asarray(pred_probs), np.asarray(labels)
    if thresholds is None:
        thresholds = per_class_thresholds(pred_probs, labels)
    has_guess, guess = _confident_guess(pred_probs, np.asarray(thresholds), rule)
    num_classes = pred_probs.shape[1]
    joint = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(joint, (labels[has_guess], guess[has_guess]), 1)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))
    return joint


def confident_learning_issues(pred_probs, labels, thresholds=None) -> np.ndarray:
    """Boolean mask of the examples off the diagonal of the confident joint: their guessed
    true class differs from the given label, and the given label is not the argmax.
    The same set as ``cleanlab.filter.find_label_issues(labels, pred_probs,
    filter_by="confident_learning")``. Lesson 02 teaches it."""
    pred_probs, labels = np.asarray(pred_probs), np.asarray(labels)
    if thresholds is None:
        thresholds = per_class_thresholds(pred_probs, labels)
    has_guess, guess = _confident_guess(pred_probs, np.asarray(thresholds))
    nudged = pred_probs.copy()
    nudged[np.arange(len(labels)), labels] += 1e-6
    return has_guess & (guess != labels) & (nudged.argmax(1) != labels)


def calibrate_confident_joint(joint, labels) -> np.ndarray:
    """Northcutt et al.'s Eq. 3: scale each row of the confident joint to the number of examples
    with that given label, then the whole matrix to ``n``, so that ``C[i, j]`` estimates how many
    examples are labeled ``i`` and truly ``j``. Float ``(C, C)``. Lesson 02 teaches it."""
    joint = np.asarray(joint, dtype=np.float64)
    counts = np.bincount(np.asarray(labels), minlength=len(joint)).astype(np.float64)
    calibrated = joint / np.clip(joint.sum(1, keepdims=True), 1e-12, None) * counts[:, None]
    return calibrated / max(calibrated.sum(), 1e-12) * counts.sum()


def estimate_joint(pred_probs, labels, thresholds=None, rule: str = "cleanlab") -> np.ndarray:
    """The estimated joint ``Q[i, j]`` of (given label ``i``, true label ``j``): the calibrated
    confident joint divided by ``n``; it sums to 1. Lesson 02 compares it with the planted noise."""
    joint = confident_joint(pred_probs, labels, thresholds, rule)
    calibrated = calibrate_confident_joint(joint, labels)
    return calibrated / calibrated.sum()


def estimated_num_errors(pred_probs, labels, thresholds=None, rule: str = "cleanlab") -> int:
    """Confident learning's estimate of how many labels are wrong: ``n`` times the off-diagonal
    mass of :func:`estimate_joint`. The cutoff it gives needs no answer key. Lesson 02 teaches it."""
    Q = estimate_joint(pred_probs, labels, thresholds, rule)
    return int(round(len(np.asarray(labels)) * (1 - np.trace(Q))))


def _round_preserving_row_totals(matrix) -> np.ndarray:
    """Round each row to integers keeping its (rounded) total: round, then move the rows'
    leftover units to the entries that rounding moved most (cleanlab's rule)."""
    out = []
    for row in np.asarray(matrix, dtype=np.float64):
        ints, total = row.round(), row.sum().round()
        while abs(ints.sum() - total) > 1e-6:
            step = 1 if total > ints.sum() else -1
            changes = min(int(abs(round(total - ints.sum()))), len(row))
            ints[np.argsort(row - ints)[::-step][:changes]] += step
        out.append(ints)
    return np.asarray(out).astype(np.int64)


def prune_by_noise_rate(pred_probs, labels, thresholds=None, rule: str = "cleanlab") -> np.ndarray:
    """Confident learning's pruning rule (cleanlab's default ``filter_by="prune_by_noise_rate"``),
    by hand: for every off-diagonal cell ``(i, j)`` of the calibrated confident joint (rounded,
    row totals kept), flag that many examples labeled ``i``, those with the largest margin
    ``p_j - p_i``; then unflag any example whose given label is still the model's top class.
    Boolean mask. Lesson 02 teaches it before the cleaned retrain uses it."""
    pred_probs, labels = np.asarray(pred_probs), np.asarray(labels)
    counts = _round_preserving_row_totals(
        calibrate_confident_joint(confident_joint(pred_probs, labels, thresholds, rule), labels))
    flagged = np.zeros(len(labels), dtype=bool)
    for i in range(len(counts)):
        members = np.flatnonzero(labels == i)
        if len(members) <= 1:
            continue
        for j in range(len(counts)):
            if j != i and counts[i, j] > 0:
                margin = pred_probs[members, j] - pred_probs[members, i]
                flagged[members[np.argsort(-margin)[:counts[i, j]]]] = True
    nudged = pred_probs.copy()
    nudged[np.arange(len(labels)), labels] += 1e-6
    return flagged & (nudged.argmax(1) != labels)


def rank_by_self_confidence(issues_mask, pred_probs, labels) -> np.ndarray:
    """Indices of the flagged examples, least self-confident (most suspicious) first. Lesson 02 teaches it."""
    idx = np.flatnonzero(issues_mask)
    return idx[np.argsort(self_confidence(pred_probs, labels)[idx], kind="stable")]


# ----------------------------------------------------------------------- evaluation


def precision_recall_at_k(scores, is_mislabeled, k: int | None = None):
    """Precision and recall of flagging the ``k`` highest scores (``k`` defaults to the true
    number of mislabeled examples, where precision equals recall). Lesson 02 teaches it."""
    is_mislabeled = np.asarray(is_mislabeled, dtype=bool)
    k = int(is_mislabeled.sum()) if k is None else int(k)
    top = np.argsort(-np.asarray(scores), kind="stable")[:k]
    hits = is_mislabeled[top].sum()
    return hits / max(k, 1), hits / max(int(is_mislabeled.sum()), 1)


def precision_recall_curve_points(scores, is_mislabeled):
    """``(precision, recall)`` arrays for flagging the top 1, 2, ..., n examples by score. Lesson 02 teaches it."""
    is_mislabeled = np.asarray(is_mislabeled, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.cumsum(is_mislabeled[order])
    flagged = np.arange(1, len(order) + 1)
    return hits / flagged, hits / max(int(is_mislabeled.sum()), 1)


def ranking_report(scores, is_mislabeled) -> dict:
    """Precision and recall at the true count, and the AUROC of ``scores`` (0.5 = random
    ranking, 1.0 = every mislabeled example above every clean one). Lesson 02 teaches it."""
    from sklearn.metrics import roc_auc_score

    precision, recall = precision_recall_at_k(scores, is_mislabeled)
    return {"precision": float(precision), "recall": float(recall),
            "auroc": float(roc_auc_score(np.asarray(is_mislabeled, dtype=bool), np.asarray(scores)))}


def retrain_test_accuracy(X, y, X_test, y_test, keep=None, *, seed: int = 0, **train_kwargs) -> float:
    """Test accuracy of :func:`train_classifier` trained on the examples in ``keep`` (a boolean
    mask; all of them by default): how much cleaning the labels is worth. Lesson 02 teaches it."""
    keep = np.ones(len(y), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    model = train_classifier(X[keep], np.asarray(y)[keep], seed=seed, **train_kwargs)
    return float((predict_proba(model, X_test).argmax(1) == np.asarray(y_test)).mean())


# ------------------------------------------------------------------------ evil twins


@dataclass
class EvilTwinFile:
    """A planted evil-twin problem: ``images``, ``labels``, the mask ``is_evil_twin`` and, for
    each evil twin, the index of its good twin (``-1`` when the good twin is absent). Lesson 02 teaches it."""

    images: np.ndarray
    labels: np.ndarray
    is_evil_twin: np.ndarray
    good_twin: dict


def _shift(image, dy, dx):
    """``image`` moved by ``(dy, dx)`` pixels, filling with zeros (no wrap-around)."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def plant_evil_twins(X, y, *, size: int = 400, n_twins: int = 30, absent: int = 8, seed: int = 0,
                     num_classes: int = 10) -> EvilTwinFile:
    """Draw ``size`` images from ``(X, y)`` of which ``n_twins`` are evil twins: a copy of another
    image with a wrong label (uniform among the other classes). A third of the copies are
    exact, a third moved by one pixel, a third with a little pixel noise; for ``absent`` of
    them the good twin is left out of the file. Works for any ``(n, H, W)`` images in
    ``[0, 1]`` (lesson 02 plants them in scikit-learn's 8x8 digits).
    """
    X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
    rng = np.random.default_rng(seed)
    n_clean = size - n_twins
    drawn = rng.choice(len(X), size=n_clean + absent, replace=False)
    images, labels = list(X[drawn[:n_clean]]), list(y[drawn[:n_clean]])
    absent_sources = drawn[n_clean:]
    present_sources = rng.choice(n_clean, size=n_twins - absent, replace=False)
    good_of = {}
    for t in range(n_twins):
        if t < absent:
            src_img, true, good = X[absent_sources[t]], int(y[absent_sources[t]]), -1
        else:
            good = int(present_sources[t - absent])
            src_img, true = images[good], int(labels[good])
        style = t % 3
        if style == 1:
            dy, dx = [(0, 1), (0, -1), (1, 0), (-1, 0)][rng.integers(4)]
            twin = _shift(src_img, dy, dx)
        elif style == 2:
            twin = np.clip(src_img + rng.normal(0, 0.05, src_img.shape) * (src_img > 0), 0, 1)
        else:
            twin = src_img.copy()
        good_of[len(images)] = good
        images.append(twin.astype(np.float32))
        labels.append((true + int(rng.integers(1, num_classes))) % num_classes)
    order = rng.permutation(len(images))
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    is_evil = np.zeros(len(images), dtype=bool)
    is_evil[[where[r] for r in good_of]] = True
    good_twin = {int(where[r]): (int(where[g]) if g >= 0 else -1) for r, g in good_of.items()}
    return EvilTwinFile(np.stack(images)[order], np.asarray(labels, dtype=np.int64)[order], is_evil, good_twin)


def exact_duplicate_groups(images) -> list:
    """Groups (lists of indices, each of length 2 or more) of byte-for-byte identical images,
    found by hashing: linear time, but blind to a one-pixel shift or a little noise. Lesson 02 teaches it."""
    groups: dict = {}
    for i, img in enumerate(np.asarray(images)):
        groups.setdefault(hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest(), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def shift_tolerant_distances(images, max_shift: int = 1) -> np.ndarray:
    """``D[i, j]``: the smallest Euclidean distance between image ``i`` moved by up to
    ``max_shift`` pixels in each direction and image ``j``; symmetric, ``inf`` on the diagonal.
    ``(n, H, W)`` in, ``(n, n)`` out; one matrix product a shift. Lesson 02 teaches it."""
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(len(images), -1)
    sq = (flat ** 2).sum(1)
    best = np.full((len(images), len(images)), np.inf)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            moved = np.stack([_shift(img, dy, dx) for img in images]).reshape(len(images), -1)
            d2 = (moved ** 2).sum(1)[:, None] + sq[None, :] - 2 * moved @ flat.T
            best = np.minimum(best, np.sqrt(np.clip(d2, 0, None)))
    best = np.minimum(best, best.T)
    np.fill_diagonal(best, np.inf)
    return best


def duplicate_pairs(distances, threshold: float) -> list:
    """Pairs ``(i, j)``, ``i < j``, closer than ``threshold``. Lesson 02 teaches it."""
    i, j = np.nonzero(np.triu(np.asarray(distances) < threshold, 1))
    return list(zip(i.tolist(), j.tolist()))


def judge_twin_pairs(pairs, labels, pred_probs) -> list:
    """For each duplicate pair whose labels disagree, the index of the twin whose given label
    the out-of-sample ``pred_probs`` find less likely: the one judged to be the evil twin.
    Pairs that agree are left alone. Lesson 02 teaches it."""
    labels = np.asarray(labels)
    conf = self_confidence(pred_probs, labels)
    flagged = []
    for i, j in pairs:
        if labels[i] != labels[j]:
            flagged.append(i if conf[i] < conf[j] else j)
    return sorted(set(flagged))


# ------------------------------------------------------- noise families, cutoffs, retrains


def flag_scores(flagged, pred_probs, labels) -> np.ndarray:
    """Suspicion scores that put the ``flagged`` examples first, each group ordered from the least
    self-confident: how a flagged set becomes a ranking. Lesson 02 teaches it."""
    conf = self_confidence(pred_probs, labels)
    return np.where(np.asarray(flagged, dtype=bool), 2.0 - conf, -conf)


def lookalike_noise(X, y_true, noise_rate: float, *, seed: int = 0, num_classes: int = 10, num_folds: int = 2,
                    **train_kwargs):
    """Look-alike label noise, the realistic hard case: ``round(noise_rate * n)`` examples, drawn
    at random, get the class a held-out model finds most likely after the true one (its second
    choice; the model is cross-validated on the clean labels, so it never saw the example).
    Returns ``(y_noisy, is_mislabeled)``. Lesson 02 and ``benchmarks/label_errors.py`` use it."""
    y_true = np.asarray(y_true)
    probs = cross_val_pred_probs(X, y_true, num_folds=num_folds, seed=seed + 7, num_classes=num_classes,
                                 **train_kwargs)
    probs[np.arange(len(y_true)), y_true] = -1.0
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(y_true), size=int(round(noise_rate * len(y_true))), replace=False)
    y_noisy = y_true.copy()
    y_noisy[chosen] = probs[chosen].argmax(1)
    return y_noisy, y_noisy != y_true


#: The noise families of lesson 02's look-alike section and ``benchmarks/label_errors.py``.
NOISE_FAMILIES = ("uniform", "pair", "lookalike")


def noisy_labels(family: str, noise_rate: float, X, y_true, *, seed: int = 0, num_classes: int = 10):
    """``(y_noisy, is_mislabeled)`` for a noise family: ``"uniform"`` (each label picked with
    probability ``noise_rate`` gets a random class, so some keep theirs), ``"pair"`` (class ``i``
    becomes ``i + 1``) or ``"lookalike"`` (:func:`lookalike_noise`). Lesson 02 uses it."""
    from .noise import corrupt_labels

    if family == "lookalike":
        return lookalike_noise(X, y_true, noise_rate, seed=seed, num_classes=num_classes)
    if family not in NOISE_FAMILIES:
        raise ValueError(f"family must be one of {NOISE_FAMILIES}, got {family!r}")
    return corrupt_labels(np.asarray(y_true), noise_rate, num_classes, kind=family, seed=seed)


def self_confidence_by_epoch(X, y, train_mask, *, num_epochs: int = 40, lr: float = 1e-3, batch_size: int = 128,
                             seed: int = 0, num_classes: int = 10, hidden=(256,)) -> np.ndarray:
    """Train :func:`train_classifier`'s recipe on the examples in ``train_mask`` only, and record after
    each epoch every example's probability of its given label: ``(num_epochs, n)``. The same model
    at the same epoch judges the examples it trained on (in-sample) and the others (out-of-sample).
    Lesson 02 teaches it."""
    train_mask = np.asarray(train_mask, dtype=bool)
    seed_everything(seed)
    model = MLP(_in_features(X), tuple(hidden), num_classes)
    rows = []

    def record(epoch, history):
        rows.append(self_confidence(predict_proba(model, X), y))

    fit(model, (X[train_mask], np.asarray(y)[train_mask]), num_epochs=num_epochs, lr=lr, optimizer="adam",
        batch_size=batch_size, seed=seed, progress=False, eval_train=False, on_epoch_end=record)
    return np.stack(rows)


def _two_disjoint_subsets(n: int, size: int, seed: int):
    """Two disjoint random index sets of ``size`` each: every example is outside at least one."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:size], perm[size:2 * size]


def aum_threshold_samples(X, y, *, num_epochs: int = 10, percentile: float = 99, seed: int = 0,
                          num_classes: int = 10, **signal_kwargs):
    """Pleiss et al. 2020's cutoff for the area under the margin, with *threshold samples*: ``n / (C + 1)``
    examples get a fake extra class ``C`` (so they are surely mislabeled), the network trains on
    ``C + 1`` classes, and an example is flagged when its AUM is below the ``percentile``-th
    percentile of the threshold samples' AUM. Two runs with disjoint threshold samples, so that
    every example is scored in a run where it kept its label (as the paper does). The runs are short
    (10 epochs by default; the paper stops at the first learning-rate drop): a network that has
    memorized the threshold samples gives them high margins, and the cutoff flags far too many.
    Returns ``(scores, flagged, cutoff)``: the suspicion scores (minus the AUM), the boolean flags
    and the two runs' cutoffs on the score scale. Lesson 02 teaches it."""
    y = np.asarray(y)
    n = len(y)
    scores, flagged, cutoffs = np.zeros(n), np.zeros(n, dtype=bool), []
    done = np.zeros(n, dtype=bool)
    for run, fake in enumerate(_two_disjoint_subsets(n, n // (num_classes + 1), seed)):
        y_run = y.copy()
        y_run[fake] = num_classes
        signals = record_training_signals(X, y_run, num_epochs=num_epochs, seed=seed + run,
                                          num_classes=num_classes + 1, desc="threshold samples", **signal_kwargs)
        run_scores = aum_scores(signals.margins)
        cutoff = float(np.percentile(-run_scores[fake], percentile))  # an AUM value
        cutoffs.append(-cutoff)
        judged = ~done
        judged[fake] = False
        scores[judged] = run_scores[judged]
        flagged[judged] = -run_scores[judged] < cutoff
        done |= judged
    return scores, flagged, cutoffs


def plant_and_recover(X, y, *, plant_fraction: float = 0.05, target_recall: float = 0.9, num_epochs: int = 5,
                      seed: int = 0, num_classes: int = 10, **signal_kwargs):
    """A cutoff for the early loss found without the answer key: flip the labels of a random
    ``plant_fraction`` of the examples ourselves (to another class, uniformly), train, and put the
    cutoff where the early loss (mean over ``num_epochs`` epochs) recovers ``target_recall`` of
    the planted flips; the examples above it are flagged. Two runs with disjoint plants, so that
    every example is judged with its own label. A plant on an already mislabeled example can put its
    true label back, so a little less than every plant is an error: with many classes and little noise
    (10 classes, 20 %: about 2 %) a 90 % target is safe; with few classes aim lower.
    Returns ``(scores, flagged, cutoffs)``.
    Lesson 02 teaches it."""
    y = np.asarray(y)
    n = len(y)
    scores, flagged, cutoffs = np.zeros(n), np.zeros(n, dtype=bool), []
    done = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed + 1)
    for run, planted in enumerate(_two_disjoint_subsets(n, int(round(plant_fraction * n)), seed)):
        y_run = y.copy()
        y_run[planted] = (y[planted] + rng.integers(1, num_classes, len(planted))) % num_classes
        signals = record_training_signals(X, y_run, num_epochs=num_epochs, seed=seed + run, num_classes=num_classes,
                                          desc="planted flips", **signal_kwargs)
        run_scores = early_loss_scores(signals.losses, num_epochs=num_epochs)
        cutoff = float(np.quantile(run_scores[planted], 1 - target_recall))
        cutoffs.append(cutoff)
        judged = ~done
        judged[planted] = False
        scores[judged] = run_scores[judged]
        flagged[judged] = run_scores[judged] >= cutoff
        done |= judged
    return scores, flagged, cutoffs


def retrain_comparison(X, y_noisy, X_test, y_test, *, cleaned_keep, oracle_keep=None, seed: int = 0,
                       num_epochs: int = 40, short_epochs: int = 12, val_fraction: float = 0.1,
                       lr: float = 1e-3, num_classes: int = 10) -> dict:
    """Clean test accuracy of the same MLP recipe (:func:`train_classifier`) trained on the noisy labels
    in the ways a cleaned retrain must be compared with: ``noisy`` (``num_epochs``, no stopping rule),
    ``noisy_early_stopped`` (trained on all but a random ``val_fraction`` of the digits and stopped at
    the epoch of best accuracy on that held-out slice's *noisy* labels: what a user without clean
    data can do), ``noisy_short`` (``short_epochs``), ``random_removal`` (as many random digits removed
    as the cleaning removes), ``cleaned`` (the digits outside ``cleaned_keep`` removed) and, given
    ``oracle_keep``, ``oracle`` (exactly the mislabeled digits removed). Lesson 02 and
    ``benchmarks/label_errors.py`` call it."""
    y_noisy, y_test = np.asarray(y_noisy), np.asarray(y_test)
    cleaned_keep = np.asarray(cleaned_keep, dtype=bool)
    rng = np.random.default_rng(seed + 12345)
    n = len(y_noisy)

    def accuracy(keep, epochs):
        return retrain_test_accuracy(X, y_noisy, X_test, y_test, keep=keep, seed=seed, num_epochs=epochs, lr=lr,
                                     num_classes=num_classes)

    out = {"noisy": accuracy(None, num_epochs)}
    val = np.zeros(n, dtype=bool)
    val[rng.choice(n, size=int(round(val_fraction * n)), replace=False)] = True
    seed_everything(seed)
    model = MLP(_in_features(X), (256,), num_classes)
    history = fit(model, (X[~val], y_noisy[~val]), (X_test, y_test), num_epochs=num_epochs, lr=lr, optimizer="adam",
                  batch_size=128, seed=seed, progress=False, eval_train=False, val=(X[val], y_noisy[val]))
    out["noisy_early_stopped"] = float(history.early_stopped("test_acc"))
    out["noisy_short"] = accuracy(None, short_epochs)
    random_keep = np.ones(n, dtype=bool)
    random_keep[rng.choice(n, size=int((~cleaned_keep).sum()), replace=False)] = False
    out["random_removal"] = accuracy(random_keep, num_epochs)
    out["cleaned"] = accuracy(cleaned_keep, num_epochs)
    if oracle_keep is not None:
        out["oracle"] = accuracy(oracle_keep, num_epochs)
    return out
