"""Label-noise models and the mislabeled-data wrapper.

Taught in lesson 01 (label noise and memorization) and lesson 03 (grokking with
mislabeled data).
"""

from __future__ import annotations

import numpy as np

from .data import label_array

__all__ = [
    "NOISE_KINDS",
    "corrupt_labels",
    "noise_transition_matrix",
    "expected_transition_matrix",
    "MislabeledDataset",
]

NOISE_KINDS = ("uniform", "flip", "pair", "background")


def corrupt_labels(
    y,
    noise_rate: float,
    num_classes: int,
    kind: str = "uniform",
    seed=None,
    background_class: int = 0,
):
    """Corrupt labels at ``noise_rate``; return ``(y_noisy, is_mislabeled)``.

    Each label is chosen for corruption independently with probability ``noise_rate``:

    - ``"uniform"`` (Zhang et al. 2017): replaced by a uniformly random class, which may
      be the true one, so only ``noise_rate * (1 - 1/num_classes)`` of labels change;
    - ``"flip"``: replaced by a uniformly random *other* class (always wrong);
    - ``"pair"``: class ``k`` becomes ``(k + 1) % num_classes``;
    - ``"background"`` (Ren et al. 2018): every corrupted label becomes ``background_class``.

    ``is_mislabeled`` is ``y_noisy != y``. Torch tensors in give torch tensors out.
    Lesson 01 teaches it.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must lie in [0, 1], got {noise_rate}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    y_np, is_torch = label_array(y), type(y).__module__.startswith("torch")
    if y_np.size and (y_np.min() < 0 or y_np.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    rng = np.random.default_rng(seed)
    chosen = rng.random(len(y_np)) < noise_rate
    y_noisy = y_np.copy()
    n = int(chosen.sum())
    if kind == "uniform":
        y_noisy[chosen] = rng.integers(0, num_classes, n)
    elif kind == "flip":
        # add 1..C-1 modulo C: uniform over the other classes
        y_noisy[chosen] = (y_np[chosen] + rng.integers(1, num_classes, n)) % num_classes
    elif kind == "pair":
        y_noisy[chosen] = (y_np[chosen] + 1) % num_classes
    else:  # background
        if not 0 <= background_class < num_classes:
            raise ValueError(f"background_class must lie in [0, {num_classes - 1}]")
        y_noisy[chosen] = background_class
    is_mislabeled = y_noisy != y_np
    if is_torch:
        import torch

        return torch.as_tensor(y_noisy), torch.as_tensor(is_mislabeled)
    return y_noisy, is_mislabeled


def noise_transition_matrix(y_true, y_noisy, num_classes: int, normalize: bool = True):
    """The empirical noise transition matrix ``T[i, j] = P(noisy label j | true label i)``.

    With ``normalize=False`` the raw counts. Rows of absent classes are zero.
    Lesson 01 shows it as an image.
    """
    y_true, y_noisy = label_array(y_true), label_array(y_noisy)
    if len(y_true) != len(y_noisy):
        raise ValueError(f"y_true has {len(y_true)} labels but y_noisy has {len(y_noisy)}")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_noisy), 1)
    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def expected_transition_matrix(noise_rate: float, num_classes: int, kind: str = "uniform",
                               background_class: int = 0):
    """The transition matrix that :func:`corrupt_labels` has in expectation. Lesson 01 teaches it."""
    C = num_classes
    T = np.eye(C) * (1.0 - noise_rate)
    if kind == "uniform":
        T += noise_rate / C
    elif kind == "flip":
        T += noise_rate / (C - 1) * (1.0 - np.eye(C))
    elif kind == "pair":
        T += noise_rate * np.roll(np.eye(C), 1, axis=1)
    elif kind == "background":
        T[:, background_class] += noise_rate
    else:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    return T


class MislabeledDataset:
    """Wrap a map-style dataset of ``(x, y)`` so that a fixed set of examples is mislabeled.

    The semantics of a student's grokking notes (lesson 03): at construction ``round(frac_mislabeled * n)``
    indices are drawn i.i.d. uniformly *with replacement* (an index can be drawn more
    than once; the last draw's label wins) and each draw gets a uniformly random label
    in ``[0, num_classes)``, possibly the true one. The draws never change afterwards,
    so every epoch sees the same labels. ``dataset[i]`` returns ``(x, y_random)`` for a
    drawn index and the wrapped example otherwise.

    Attributes: ``drawn_indices`` and ``drawn_labels`` (the raw draws, in order),
    ``replaced_indices`` (sorted unique drawn indices), ``is_replaced`` (bool, length n)
    and ``is_mislabeled`` (bool, length n: replaced *and* the label differs from the
    wrapped one).
    """

    def __init__(self, dataset, frac_mislabeled: float, num_classes: int, seed=0):
        if not 0.0 <= frac_mislabeled <= 1.0:
            raise ValueError(f"frac_mislabeled must lie in [0, 1], got {frac_mislabeled}")
        self.dataset = dataset
        self.frac_mislabeled = frac_mislabeled
        self.num_classes = num_classes
        n = len(dataset)
        rng = np.random.default_rng(seed)
        num_draws = int(round(frac_mislabeled * n))
        self.drawn_indices = rng.integers(0, n, num_draws)
        self.drawn_labels = rng.integers(0, num_classes, num_draws)
        self._label_of = {int(i): int(lab) for i, lab in zip(self.drawn_indices, self.drawn_labels)}
        self.replaced_indices = np.array(sorted(self._label_of), dtype=np.int64)
        self.is_replaced = np.zeros(n, dtype=bool)
        self.is_replaced[self.replaced_indices] = True
        self.is_mislabeled = np.zeros(n, dtype=bool)
        for i in self.replaced_indices:
            self.is_mislabeled[i] = self._label_of[int(i)] != int(self._label(self.dataset[int(i)][1]))

    @staticmethod
    def _label(y):
        return y.item() if hasattr(y, "item") else y

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        x, y = self.dataset[index]
        index = int(index)
        if index in self._label_of:
            new = self._label_of[index]
            if type(y).__module__.startswith("torch"):
                import torch

                y = torch.tensor(new, dtype=y.dtype)
            elif isinstance(y, np.generic):
                y = type(y)(new)
            else:
                y = new
        return x, y

    @property
    def mislabeled_indices(self):
        """Indices whose served label differs from the wrapped dataset's label."""
        return np.flatnonzero(self.is_mislabeled)

    def noisy_targets(self):
        """All served labels as an int64 array (reads every example's label once)."""
        return np.array([int(self._label(self[i][1])) for i in range(len(self))], dtype=np.int64)
