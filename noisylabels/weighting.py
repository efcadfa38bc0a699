"""Resampling and weighting the training examples: class imbalance and noisy labels.

Taught in lesson 05 (loss weighting), following the related work that Ren et al.
2018 (lesson 06, learning to reweight) start from:

- two-class imbalance tasks with one label convention (the rare class is label 1,
  :data:`MINORITY_LABEL`): :func:`subsample_imbalanced`, :func:`imbalanced_subset` and Ren
  et al.'s MNIST 4 vs 9 with a clean validation set, :func:`imbalanced_pair`;
- resampling for class imbalance: :func:`undersample_indices`, :func:`oversample_indices`
  and SMOTE-style interpolation :func:`smote_oversample` (Chawla et al. 2002);
- cost-sensitive weights: :func:`example_weights_from_classes` turns class weights (for
  example :func:`class_weights_from_frequencies`) into one weight an example;
- weights from the loss: :func:`loss_based_weights` and :class:`LossWeightedCrossEntropy`
  weight high-loss examples up (good for a rare class) or down (good for wrong labels);
- :class:`NoiseAdaptationLayer`: a learnable transition matrix on top of a classifier
  (Sukhbaatar et al. 2015; Goldberger & Ben-Reuven 2017);
- :func:`class_error_rates` and :func:`balanced_error`: the error of each class.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import label_array

__all__ = [
    "MINORITY_LABEL",
    "subsample_imbalanced",
    "imbalanced_subset",
    "imbalanced_pair",
    "undersample_indices",
    "oversample_indices",
    "smote_oversample",
    "class_weights_from_frequencies",
    "example_weights_from_classes",
    "LOSS_WEIGHTING_RULES",
    "loss_based_weights",
    "LossWeightedCrossEntropy",
    "NoiseAdaptationLayer",
    "class_error_rates",
    "balanced_error",
]


# ----------------------------------------------------------------------------- class imbalance
#: The course's label convention for two-class imbalance tasks: the rare (minority) class is
#: label 1, the majority class label 0.
MINORITY_LABEL = 1


def subsample_imbalanced(
    y,
    majority_class: int,
    minority_class: int,
    proportion: float,
    num_majority: int | None = None,
    seed=None,
):
    """Indices of a two-class subset whose majority class makes up ``proportion`` of it.

    Keeps ``num_majority`` examples of ``majority_class`` (all of them by default) and
    ``round(num_majority * (1 - proportion) / proportion)`` of ``minority_class`` (at
    least one), drawn without replacement; raises ``ValueError`` when the data do not
    have that many. Lesson 05 teaches it (MNIST 4 vs 9, as in Ren et al. 2018).
    """
    if not 0.5 <= proportion < 1.0:
        raise ValueError(f"proportion must lie in [0.5, 1), got {proportion}")
    y_np = label_array(y)
    rng = np.random.default_rng(seed)
    majority = np.flatnonzero(y_np == majority_class)
    minority = np.flatnonzero(y_np == minority_class)
    if num_majority is None:
        num_majority = len(majority)
    num_minority = max(1, int(round(num_majority * (1.0 - proportion) / proportion)))
    if num_majority > len(majority) or num_minority > len(minority):
        raise ValueError(
            f"need {num_majority} of class {majority_class} and {num_minority} of class "
            f"{minority_class}; the data have {len(majority)} and {len(minority)}"
        )
    picked = np.concatenate([
        rng.choice(majority, num_majority, replace=False),
        rng.choice(minority, num_minority, replace=False),
    ])
    return rng.permutation(picked)


def imbalanced_subset(X, y, proportion: float | None, majority_class: int = 9, minority_class: int = 4,
                      num_majority: int | None = None, seed=None):
    """``(X, y)`` of a two-class subset of ``(X, y)``, labelled minority 1, majority 0.

    With a ``proportion`` the subset is :func:`subsample_imbalanced`'s (``num_majority``,
    ``seed`` as there); with ``proportion=None`` it keeps every example of the two classes in
    their order (a balanced test set). ``X`` and the new labels come back as the arrays
    given. Lesson 05 teaches it (MNIST 4 vs 9).
    """
    y_np = label_array(y)
    if proportion is None:
        idx = np.flatnonzero(np.isin(y_np, (majority_class, minority_class)))
    else:
        idx = subsample_imbalanced(y_np, majority_class, minority_class, proportion, num_majority, seed)
    return X[idx], (y_np[idx] == minority_class).astype(np.int64) * MINORITY_LABEL


def imbalanced_pair(proportion: float, majority_class: int = 9, minority_class: int = 4,
                    num_val_per_class: int = 5, num_majority: int | None = None, data=None, seed=0):
    """Ren et al.'s class-imbalance task: a two-class training set, a tiny balanced clean validation set, a balanced test set.

    From ``data = (X_train, y_train, X_test, y_test)`` (default: the offline MNIST
    digits), ``num_val_per_class`` training digits of each class are set aside as the
    clean validation set, then :func:`imbalanced_subset` keeps ``num_majority`` of the
    remaining majority digits (default: all) and enough minority digits for ``proportion``
    (the paper: 5,000 training images, ``round(5000 * proportion)`` of them majority).
    Labels follow the course's convention: 1 for the minority (rare) class, 0 for the
    majority; the test set keeps every test digit of both classes. Returns
    ``(X, y), (X_val, y_val), (X_test, y_test)`` as float image tensors ``(n, 1, 28, 28)``
    and int64 labels. With the offline digits (400 a class) the majority class has 395
    training digits, so 0.995 leaves 2 minority digits and 0.9975 (1 digit) is the largest
    proportion the data allow. Lesson 06 (learning to reweight) and homework 4 use it.
    """
    from .data import load_offline_mnist, to_tensors

    X_train, y_train, X_test, y_test = data if data is not None else load_offline_mnist()
    y_train = np.asarray(y_train)
    rng = np.random.default_rng(seed)
    pair = dict(majority_class=majority_class, minority_class=minority_class)
    val_idx = np.concatenate([rng.choice(np.flatnonzero(y_train == k), num_val_per_class, replace=False)
                              for k in (minority_class, majority_class)])
    pool = np.setdiff1d(np.flatnonzero(np.isin(y_train, (minority_class, majority_class))), val_idx)
    train = imbalanced_subset(X_train[pool], y_train[pool], proportion, num_majority=num_majority,
                              seed=rng.integers(2**31), **pair)
    val = imbalanced_subset(X_train[val_idx], y_train[val_idx], None, **pair)
    return to_tensors(*train), to_tensors(*val), to_tensors(*imbalanced_subset(X_test, y_test, None, **pair))


# ----------------------------------------------------------------------------- resampling
def undersample_indices(y, seed=None) -> np.ndarray:
    """Indices that keep, of every class present, as many examples as the rarest class has.

    Drawn without replacement, returned shuffled. Balances the classes by throwing
    majority examples away. Lesson 05 teaches it.
    """
    y = label_array(y)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    n_min = counts.min()
    picked = [rng.choice(np.flatnonzero(y == k), n_min, replace=False) for k in classes]
    return rng.permutation(np.concatenate(picked))


def oversample_indices(y, seed=None) -> np.ndarray:
    """Indices that keep every example and repeat random ones of the smaller classes until
    every class present has as many as the largest; returned shuffled. Lesson 05 teaches it."""
    y = label_array(y)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    n_max = counts.max()
    picked = []
    for k, n_k in zip(classes, counts):
        idx = np.flatnonzero(y == k)
        picked += [idx, rng.choice(idx, n_max - n_k, replace=True)]
    return rng.permutation(np.concatenate(picked))


def smote_oversample(X, y, k_neighbors: int = 5, seed=None):
    """SMOTE-style oversampling: new examples on segments between same-class neighbours.

    For every class smaller than the largest, make up the difference with synthetic
    examples ``x + u (x_nn - x)``, ``u ~ U(0, 1)``, where ``x`` is a random example of the
    class and ``x_nn`` one of its ``k_neighbors`` nearest neighbours in the class
    (Euclidean distance on the flattened inputs). A class with a single example is
    repeated. Returns ``X_new, y_new`` (numpy; originals first, then the synthetic
    examples) with ``X``'s shape per example. Lesson 05 teaches it.
    """
    X = np.asarray(X.detach().cpu() if torch.is_tensor(X) else X, dtype=np.float32)
    y = label_array(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels")
    rng = np.random.default_rng(seed)
    flat = X.reshape(len(X), -1)
    classes, counts = np.unique(y, return_counts=True)
    n_max = counts.max()
    new_X, new_y = [X], [y]
    for k, n_k in zip(classes, counts):
        need = n_max - n_k
        if need == 0:
            continue
        members = flat[y == k]
        base = rng.integers(0, n_k, need)
        if n_k == 1:
            synthetic = members[base]
        else:
            d = ((members[:, None, :] - members[None, :, :]) ** 2).sum(-1)
            np.fill_diagonal(d, np.inf)
            num_neighbours = min(k_neighbors, n_k - 1)
            neighbours = np.argsort(d, axis=1)[:, :num_neighbours]
            partner = neighbours[base, rng.integers(0, num_neighbours, need)]
            u = rng.random((need, 1)).astype(np.float32)
            synthetic = members[base] + u * (members[partner] - members[base])
        new_X.append(synthetic.reshape((need,) + X.shape[1:]))
        new_y.append(np.full(need, k, dtype=np.int64))
    return np.concatenate(new_X), np.concatenate(new_y)


# ----------------------------------------------------------------------------- weights
def class_weights_from_frequencies(y, num_classes: int | None = None, power: float = 1.0):
    """Inverse-frequency class weights ``w_k = (n / (C n_k)) ** power`` as a float tensor.

    Balanced classes get weight 1; a class with half the average count gets 2 (with
    ``power=1``). Absent classes get weight 0. Lesson 05 (loss weighting) teaches them;
    homework 3 has students write them.
    """
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long().reshape(-1)
    C = int(num_classes if num_classes is not None else int(y.max()) + 1)
    counts = torch.bincount(y, minlength=C).float()
    w = torch.zeros(C)
    present = counts > 0
    w[present] = (len(y) / (C * counts[present])) ** power
    return w


def example_weights_from_classes(y, class_weights) -> np.ndarray:
    """One weight an example, ``class_weights[y_i]`` (for :func:`noisylabels.fit`'s ``sample_weights``).
    Lesson 05 teaches it."""
    w = class_weights.detach().cpu().numpy() if torch.is_tensor(class_weights) else np.asarray(class_weights)
    return w.astype(np.float32)[label_array(y)]


#: The fixed loss-based weighting rules of lesson 05.
LOSS_WEIGHTING_RULES = ("uniform", "upweight_high_loss", "downweight_high_loss")


def loss_based_weights(losses: torch.Tensor, rule: str = "uniform", gamma: float = 2.0) -> torch.Tensor:
    """Per-example weights from cross-entropy ``losses``, normalized to mean 1 (no gradient).

    With ``p = exp(-loss)`` the model's probability of the given label:

    - ``"uniform"``: every weight 1 (plain cross-entropy);
    - ``"upweight_high_loss"``: ``(1 - p) ** gamma``, the focal loss's factor (Lin et al.
      2017), in the spirit of boosting: what the model gets wrong counts more. Helps a
      rare class, and hurts when the high-loss examples are mislabelled;
    - ``"downweight_high_loss"``: ``p ** gamma``: trust what the model already agrees
      with, as self-paced learning and small-loss selection do. Resists wrong labels,
      and ignores a rare class. Lesson 05 teaches it.
    """
    if rule not in LOSS_WEIGHTING_RULES:
        raise ValueError(f"rule must be one of {LOSS_WEIGHTING_RULES}, got {rule!r}")
    losses = losses.detach()
    if rule == "uniform":
        return torch.ones_like(losses)
    p = torch.exp(-losses)
    w = (1.0 - p) ** gamma if rule == "upweight_high_loss" else p ** gamma
    return w / w.mean().clamp_min(1e-12)


class LossWeightedCrossEntropy(nn.Module):
    """Cross-entropy whose batch mean is weighted by :func:`loss_based_weights`.

    ``class_weights`` (a tensor ``(C,)``) multiply the per-example weights, so class
    weighting and loss weighting combine. The batch loss is
    ``sum_i w_i l_i / sum_i w_i``. During the first ``warmup_epochs`` epochs the rule is
    ``"uniform"`` (a model that has learned nothing yet cannot tell which losses to
    trust; down-weighting from the first step can collapse onto one class).
    :func:`noisylabels.fit` calls :meth:`set_epoch` before each epoch. Lesson 05 teaches it.
    """

    def __init__(self, rule: str = "uniform", gamma: float = 2.0, class_weights=None, warmup_epochs: int = 0):
        super().__init__()
        if rule not in LOSS_WEIGHTING_RULES:
            raise ValueError(f"rule must be one of {LOSS_WEIGHTING_RULES}, got {rule!r}")
        self.rule, self.gamma, self.warmup_epochs = rule, gamma, warmup_epochs
        self.epoch = 1
        cw = None if class_weights is None else torch.as_tensor(
            np.asarray(class_weights) if not torch.is_tensor(class_weights) else class_weights).float()
        self.register_buffer("class_weights", cw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def forward(self, logits, y):
        y = y.long()
        losses = F.cross_entropy(logits, y, reduction="none")
        rule = "uniform" if self.epoch <= self.warmup_epochs else self.rule
        w = loss_based_weights(losses, rule, self.gamma)
        if self.class_weights is not None:
            w = w * self.class_weights.to(logits.device)[y]
        return (w * losses).sum() / w.sum().clamp_min(1e-12)

    def extra_repr(self):
        return (f"rule={self.rule!r}, gamma={self.gamma}, class_weights={self.class_weights is not None}, "
                f"warmup_epochs={self.warmup_epochs}")


# ----------------------------------------------------------------------------- noise adaptation
class NoiseAdaptationLayer(nn.Module):
    """A classifier followed by a learnable noise transition matrix (Sukhbaatar et al. 2015).

    While training, the output is ``log(softmax(base(x)) @ T)``, the log-probabilities
    of the *noisy* label, where each row ``T[i]`` is a softmax over learnable scores, so
    ``T[i, j]`` estimates ``P(noisy label j | true class i)``; cross-entropy on the noisy
    labels then trains both. In ``eval()`` mode the output is ``base(x)``, the clean
    classifier, which is what :func:`noisylabels.fit` and :func:`noisylabels.evaluate`
    score on the test set.

    ``T`` starts at ``init_transition`` (for example an estimate of the noise, as
    Goldberger & Ben-Reuven do) or else near the identity, with ``init_diagonal`` on
    the diagonal and the rest spread evenly. With ``trainable=False`` it stays fixed:
    that is forward loss correction (Patrini et al. 2017). A learnable ``T`` and a
    flexible classifier can explain the same noisy labels in more than one way, so the
    layer helps most when ``T`` starts from a reasonable estimate. Lesson 05 teaches it.
    """

    def __init__(self, base: nn.Module, num_classes: int, init_diagonal: float = 0.9,
                 init_transition=None, trainable: bool = True):
        super().__init__()
        self.base = base
        self.num_classes = num_classes
        if init_transition is None:
            if not 1.0 / num_classes < init_diagonal < 1.0:
                raise ValueError(f"init_diagonal must lie in (1/num_classes, 1), got {init_diagonal}")
            off = (1.0 - init_diagonal) / (num_classes - 1)
            T0 = torch.full((num_classes, num_classes), off)
            T0.fill_diagonal_(init_diagonal)
        else:
            T0 = torch.as_tensor(np.asarray(init_transition), dtype=torch.float32)
            if T0.shape != (num_classes, num_classes):
                raise ValueError(f"init_transition must have shape ({num_classes}, {num_classes}), got {tuple(T0.shape)}")
            T0 = T0.clamp_min(1e-6)
            T0 = T0 / T0.sum(1, keepdim=True)
        self.transition_scores = nn.Parameter(torch.log(T0), requires_grad=trainable)

    @property
    def transition_matrix(self) -> torch.Tensor:
        """The current ``T`` (rows sum to 1), detached."""
        return torch.softmax(self.transition_scores.detach(), dim=1)

    def noisy_log_probs(self, x) -> torch.Tensor:
        p_clean = torch.softmax(self.base(x), dim=1)
        T = torch.softmax(self.transition_scores, dim=1)
        return torch.log((p_clean @ T).clamp_min(1e-12))

    def forward(self, x):
        return self.noisy_log_probs(x) if self.training else self.base(x)


# ----------------------------------------------------------------------------- evaluation
def class_error_rates(pred, y, num_classes: int | None = None) -> np.ndarray:
    """Error rate of each class (``nan`` for classes absent from ``y``).

    ``pred`` holds predicted labels ``(n,)`` or probabilities / logits ``(n, C)``.
    Lesson 05 teaches it.
    """
    pred = pred.detach().cpu().numpy() if torch.is_tensor(pred) else np.asarray(pred)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    y = label_array(y)
    C = int(num_classes if num_classes is not None else max(y.max(), pred.max()) + 1)
    errors = np.full(C, np.nan)
    for k in range(C):
        members = y == k
        if members.any():
            errors[k] = float((pred[members] != k).mean())
    return errors


def balanced_error(pred, y, num_classes: int | None = None) -> float:
    """Mean of the per-class error rates: the error on a test set with balanced classes.
    Lesson 05 teaches it; lesson 06 reports it."""
    return float(np.nanmean(class_error_rates(pred, y, num_classes)))
