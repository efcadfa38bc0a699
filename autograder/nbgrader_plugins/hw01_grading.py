"""Homework 1 (label corruption): the grade cells' checks, run in the nbgrader process.

Each hidden test region of ``solutions/hw01_label_corruption`` calls the student's
functions on fixed inputs and emits what they returned (:mod:`autograder.nbgrader_plugins.check_data`).
The functions here recompute the inputs and the reference values with the course
library in the grader process and decide the points (see :mod:`autograder.nbgrader_plugins.outside_kernel`).
The messages are the instructor's assertion messages; a cell gets its points only if
every check of the cell (the visible ones and the hidden ones) holds.
"""

from __future__ import annotations

import numpy as np

import noisylabels as nl

from autograder.nbgrader_plugins.grading_edition import withhold
from autograder.nbgrader_plugins.outside_kernel import CheckFailed, as_array, check_values, full_marks, register, require

HW = "hw01_label_corruption"
NUM_CLASSES = 10

#: What the students write themselves: withheld from the library while the notebook is graded
#: (autograder/nbgrader_plugins/grading_edition.py). No library function homework 1 uses calls them
#: (``corruption_sweep`` and ``make_grokking_data`` do, and stop working too).
BLOCKED = withhold(HW, "homework 1", {
    "noisylabels.noise": ("corrupt_labels", "noise_transition_matrix", "MislabeledDataset"),
})


def _int_array(values, key, shape=None):
    try:
        a = as_array(values[key])
    except (KeyError, ValueError) as exc:
        raise CheckFailed(f"no usable {key!r} in the reported results") from exc
    require(a.dtype.kind in "iub" or a.size == 0, f"{key} must hold integers")
    if shape is not None:
        require(a.shape == shape, f"{key} has shape {a.shape}, expected {shape}")
    return a.astype(np.int64)


@register(HW, "test_corrupt_uniform_shapes")
def corrupt_uniform_shapes(ctx):
    v = check_values(ctx)
    y_small = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    y_noisy, mask = as_array(v["y_noisy"]), as_array(v["is_mislabeled"])
    require(y_noisy.shape == (8,) and mask.shape == (8,), "both outputs have the shape of y")
    require(mask.dtype == bool, "is_mislabeled is a boolean array")
    require(np.array_equal(as_array(v["y"]), y_small), "corrupt_uniform must not modify y")
    require(np.array_equal(mask, y_noisy != y_small), "is_mislabeled is y_noisy != y")
    return full_marks(ctx)


@register(HW, "test_corrupt_uniform_rates")
def corrupt_uniform_rates(ctx):
    v = check_values(ctx)
    y = np.arange(50_000) % NUM_CLASSES
    by_rate = v["y_noisy_by_rate"]
    for rate in (0.0, 0.3, 1.0):
        changed = (_int_array(by_rate, str(rate), y.shape) != y).mean()
        require(abs(changed - rate * (1 - 1 / NUM_CLASSES)) < 0.01, f"noise_rate {rate}: {changed:.3f} changed")
    y_noisy = _int_array(v, "y_noisy_uniform", y.shape)
    require(y_noisy.min() >= 0 and y_noisy.max() < NUM_CLASSES, "labels stay in range(num_classes)")
    counts = np.bincount(y_noisy, minlength=NUM_CLASSES) / len(y_noisy)
    require(np.abs(counts - 1 / NUM_CLASSES).max() < 0.01, "at noise_rate 1 the labels are uniform")
    y4 = np.arange(50_000) % 4
    changed = (_int_array(v, "y_noisy_four", y4.shape) != y4).mean()
    require(abs(changed - 0.6 * 0.75) < 0.01, "rates follow num_classes")
    return full_marks(ctx)


@register(HW, "test_corrupt_uniform_matches_library")
def corrupt_uniform_matches_library(ctx):
    v = check_values(ctx)
    y = np.arange(5_000) % NUM_CLASSES
    for seed in (0, 7):
        mine, mine_mask = v["by_seed"][str(seed)]
        lib, lib_mask = nl.corrupt_labels(y, 0.4, NUM_CLASSES, kind="uniform", seed=seed)
        require(as_array(mine).shape == y.shape, "y_noisy has the shape of y")
        require(np.array_equal(as_array(mine), lib), "follow the steps in the docstring in order")
        require(np.array_equal(as_array(mine_mask), lib_mask), "is_mislabeled differs from the library's")
    return full_marks(ctx)


@register(HW, "test_transition_matrix_basics")
def transition_matrix_basics(ctx):
    v = check_values(ctx)
    T_clean, T_rows = as_array(v["T_clean"], float), as_array(v["T_rows"], float)
    require(T_clean.shape == (NUM_CLASSES, NUM_CLASSES), "T is (num_classes, num_classes)")
    require(np.allclose(T_clean, np.eye(NUM_CLASSES)), "without noise T is the identity")
    require(T_rows.shape == (3, 3) and np.allclose(T_rows, [[0.5, 0, 0.5], [0, 1, 0], [0, 0, 0]]),
            "rows are normalized; absent classes stay zero")
    return full_marks(ctx)


@register(HW, "test_transition_matrix_library")
def transition_matrix_library(ctx):
    v = check_values(ctx)
    small = as_array(v["T_small"], float)
    require(small.shape == (2, 2) and np.allclose(small, [[0, 1], [0, 1]]), "T for labels [0, 1] -> [1, 1]")
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 7, 3000), rng.integers(0, 7, 3000)
    T_random = as_array(v["T_random"], float)
    require(T_random.shape == (7, 7) and np.allclose(T_random, nl.noise_transition_matrix(a, b, 7)),
            "differs from the library's transition matrix")
    y_true = np.arange(100_000) % NUM_CLASSES
    y_noisy, _ = nl.corrupt_labels(y_true, 0.4, NUM_CLASSES, seed=6)
    T_noisy = as_array(v["T_noisy"], float)
    reference = nl.noise_transition_matrix(y_true, y_noisy, NUM_CLASSES)
    require(T_noisy.shape == reference.shape and np.allclose(T_noisy, reference),
            "differs from the library's transition matrix on 100,000 corrupted labels")
    require(np.abs(T_noisy - nl.expected_transition_matrix(0.4, NUM_CLASSES)).max() < 0.02,
            "far from the expected matrix")
    return full_marks(ctx)


@register(HW, "test_mislabels_shapes")
def mislabels_shapes(ctx):
    v = check_values(ctx)
    idx, lab = _int_array(v, "idx"), _int_array(v, "lab")
    require(idx.shape == (100,) and lab.shape == (100,), "round(frac_mislabeled * n) draws")
    require(idx.min() >= 0 and idx.max() < 1000 and lab.min() >= 0 and lab.max() < NUM_CLASSES,
            "indices and labels in range")
    require(np.array_equal(_int_array(v, "served"), [0, 4, 0, 2, 0]), "the last draw of an index wins")
    return full_marks(ctx)


@register(HW, "test_mislabels_rates")
def mislabels_rates(ctx):
    v = check_values(ctx)
    by_frac = v["idx_by_frac"]
    idx = _int_array(by_frac, "1.0", (20_000,))
    require(len(np.unique(idx)) < len(idx), "indices are drawn with replacement")
    for frac in (0.1, 0.5, 1.0):
        idx = _int_array(by_frac, str(frac), (int(round(frac * 20_000)),))
        require(idx.min() >= 0 and idx.max() < 20_000, "indices in range(n)")
        replaced = len(np.unique(idx)) / 20_000
        require(abs(replaced - (1 - np.exp(-frac))) < 0.015, f"frac {frac}: replaced {replaced:.3f}")
    lab = _int_array(v, "lab_four", (10_000,))
    require(lab.min() >= 0 and lab.max() < 4, "labels in range(num_classes)")
    require(np.abs(np.bincount(lab, minlength=4) / len(lab) - 0.25).max() < 0.02, "labels are uniform")
    return full_marks(ctx)


@register(HW, "test_mislabels_match_library")
def mislabels_match_library(ctx):
    v = check_values(ctx)
    y_base = np.arange(3000) % NUM_CLASSES
    wrapped = nl.MislabeledDataset(list(zip(np.zeros(3000), y_base)), 0.3, NUM_CLASSES, seed=4)
    served = _int_array(v, "served")
    require(served.shape == y_base.shape, "serve_labels returns one label per example")
    require(np.array_equal(served, wrapped.noisy_targets()), "differs from the labels of nl.MislabeledDataset")
    return full_marks(ctx)


def _levels():
    return (0.0, 0.5, 1.0) if nl.run_size() == "quick" else (0.0, 0.25, 0.5, 0.75, 1.0)


def _curve(ctx):
    """The student's curve. It comes from a training run in the student's kernel, which
    the grader cannot repeat without running the student's code: only its form and the
    instructor's thresholds are checked (see autograder/README.md)."""
    curve = check_values(ctx)["curve"]
    require(isinstance(curve, dict) and set(curve) >= {"levels", "train_error", "test_error"},
            "the keys of the curve")
    n = len(_levels())
    out = {}
    for key in ("levels", "train_error", "test_error"):
        a = as_array(curve[key], float)
        require(a.shape == (n,), "one value a level")
        out[key] = a
    require(np.allclose(out["levels"], _levels()), "the curve's levels are LEVELS")
    return out


@register(HW, "test_curve_shape")
def curve_shape(ctx):
    curve = _curve(ctx)
    require(np.all((curve["test_error"] >= 0) & (curve["test_error"] <= 1)), "errors are fractions")
    return full_marks(ctx)


@register(HW, "test_curve_memorization")
def curve_memorization(ctx):
    curve = _curve(ctx)
    require(np.all(curve["train_error"] >= 0), "errors are fractions")
    require(curve["train_error"].max() <= 0.05, f"train errors {curve['train_error']}")
    return full_marks(ctx)


@register(HW, "test_curve_generalization")
def curve_generalization(ctx):
    test_error = _curve(ctx)["test_error"]
    require(test_error[-1] > test_error[0], "test error rises from clean to random labels")
    require(test_error[0] <= 0.15, f"clean test error {test_error[0]:.3f}")
    require(test_error[-1] >= 0.75, f"random-label test error {test_error[-1]:.3f}")
    require(np.all(np.diff(test_error) >= -0.05), f"test error rises with corruption: {test_error}")
    return full_marks(ctx)
