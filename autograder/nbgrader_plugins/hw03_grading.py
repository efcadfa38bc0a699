"""Homework 3 (robust losses): the grade cells' checks, run in the nbgrader process.

The hidden test regions of ``solutions/hw03_robust_losses`` emit the student's losses and
gradients on fixed inputs (:mod:`autograder.nbgrader_plugins.check_data`); the functions here rebuild the
inputs, compute the references (fastai, the course library, closed forms) in the grader
process and decide the points (see :mod:`autograder.nbgrader_plugins.outside_kernel`). A cell gets its
points only if all of its checks (visible and hidden) hold.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import noisylabels as nl

from autograder.nbgrader_plugins.grading_edition import withhold
from autograder.nbgrader_plugins.outside_kernel import CheckFailed, as_tensor, check_values, full_marks, register, require

HW = "hw03_robust_losses"

#: What the students write themselves: withheld from the library while the notebook is graded
#: (autograder/nbgrader_plugins/grading_edition.py), with the module forms and the helpers that make each a
#: one-liner (``smoothed_targets`` + ``soft_cross_entropy``, ``small_loss_mask``). The
#: experiment's ``nl.corrupt_labels``, ``nl.MLP`` and ``nl.fit`` use none of them.
BLOCKED = withhold(HW, "homework 3", {
    "noisylabels.losses": (
        "smoothed_targets", "soft_cross_entropy", "label_smoothing_cross_entropy", "generalized_cross_entropy",
        "bootstrap_soft_loss", "bootstrap_hard_loss", "trimmed_mean", "small_loss_mask",
        "LabelSmoothingCE", "GeneralizedCrossEntropy", "BootstrappingLoss",
        "TrimmedMeanLoss", "SmallLossSelection",
    ),
    "noisylabels.weighting": ("class_weights_from_frequencies",),
})


def _inputs():
    """The setup cell's batch: 8 examples, 5 classes, float64 logits."""
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    return logits, y




def _close(a, b, **kw):
    return torch.allclose(a, b.to(torch.float64), **kw)


@register(HW, "test_label_smoothing_fastai")
def label_smoothing_fastai(ctx):
    from fastai.losses import LabelSmoothingCrossEntropy

    v = check_values(ctx)
    logits, y = _inputs()
    require(v.get("shape") == [], "return a scalar: the mean over the batch")
    for eps in (0.1, 0.3):
        ours = as_tensor(v["by_eps"], str(eps), ())
        require(_close(ours, LabelSmoothingCrossEntropy(eps=eps)(logits, y)), f"differs from fastai at eps={eps}")
    return full_marks(ctx)


@register(HW, "test_label_smoothing_limits")
def label_smoothing_limits(ctx):
    v = check_values(ctx)
    logits, y = _inputs()
    require(_close(as_tensor(v, "eps0", ()), F.cross_entropy(logits, y)), "eps=0 should be cross-entropy")
    uniform = -F.log_softmax(logits, 1).mean(1).mean()
    require(_close(as_tensor(v, "eps1", ()), uniform), "eps=1 should ignore the labels")
    reference = nl.label_smoothing_cross_entropy(logits.float(), y, eps=0.2)
    require(_close(as_tensor(v, "float32", ()), reference, rtol=1e-5, atol=1e-6), "differs from the reference at eps=0.2")
    return full_marks(ctx)


@register(HW, "test_label_smoothing_gradient")
def label_smoothing_gradient(ctx):
    v = check_values(ctx)
    logits, y = _inputs()
    grad = as_tensor(v, "grad", logits.shape)
    targets = 0.9 * F.one_hot(y, 5).double() + 0.1 / 5
    require(_close(grad, (torch.softmax(logits, 1) - targets) / len(y)), "gradient differs from fastai's")
    return full_marks(ctx)


@register(HW, "test_gce_closed_form")
def gce_closed_form(ctx):
    v = check_values(ctx)
    require(v.get("shape") == [], "return a scalar: the mean over the batch")
    require(math.isclose(float(as_tensor(v, "got", ())), (1 - 4 ** -0.7) / 0.7, rel_tol=1e-5),
            "differs from the closed form (1 - C ** -q) / q")
    require(math.isclose(float(as_tensor(v, "ten_classes", ())), (1 - 0.1 ** 0.5) / 0.5, rel_tol=1e-5),
            "differs from the closed form with 10 classes")
    return full_marks(ctx)


@register(HW, "test_gce_limits")
def gce_limits(ctx):
    v = check_values(ctx)["by_q"]
    logits, y = _inputs()
    p_y = torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    require(_close(as_tensor(v, "1.0", ()), (1 - p_y).mean()), "q = 1 should be the mean absolute error 1 - p_y")
    require(_close(as_tensor(v, "1e-06", ()), F.cross_entropy(logits, y), atol=1e-4), "small q should approach cross-entropy")
    require(_close(as_tensor(v, "0.7", ()), nl.generalized_cross_entropy(logits, y, q=0.7)), "differs from the reference at q=0.7")
    return full_marks(ctx)


@register(HW, "test_gce_gradient")
def gce_gradient(ctx):
    v = check_values(ctx)
    logits, y = _inputs()
    grad = as_tensor(v, "grad", logits.shape)
    p = torch.softmax(logits, 1)
    expected = p.gather(1, y[:, None]) ** 0.7 * (p - F.one_hot(y, 5).double()) / len(y)
    require(_close(grad, expected, atol=1e-10), "gradient differs from p_y^q * (p - onehot) / n")
    return full_marks(ctx)


def _entropy(logits):
    log_p = F.log_softmax(logits, 1)
    return -(log_p.exp() * log_p).sum(1).mean()


@register(HW, "test_bootstrap_soft")
def bootstrap_soft(ctx):
    v = check_values(ctx)["by_beta"]
    logits, y = _inputs()
    for beta in (0.95, 0.5):
        expected = beta * F.cross_entropy(logits, y) + (1 - beta) * _entropy(logits)
        require(_close(as_tensor(v, str(beta), ()), expected), f"soft bootstrapping with beta={beta} differs from "
                "beta * CE + (1 - beta) * entropy")
    return full_marks(ctx)


@register(HW, "test_bootstrap_hard")
def bootstrap_hard(ctx):
    v = check_values(ctx)
    logits, y = _inputs()
    lp = F.log_softmax(torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]), 1)
    expected = (-(0.8 * lp[0, 1] + 0.2 * lp[0, 0]) - lp[1, 2]) / 2
    require(_close(as_tensor(v, "small", ()), expected), "hard bootstrapping differs from the closed form")
    require(_close(as_tensor(v, "batch", ()), nl.bootstrap_hard_loss(logits, y, 0.8)), "hard bootstrapping differs "
            "from the reference")
    return full_marks(ctx)


@register(HW, "test_bootstrap_gradient")
def bootstrap_gradient(ctx):
    v = check_values(ctx)
    logits, y = _inputs()
    for kind, loss in (("soft", lambda b: nl.bootstrap_soft_loss(b, y, 0.95)),
                       ("hard", lambda b: nl.bootstrap_hard_loss(b, y, 0.8))):
        b = logits.clone().requires_grad_(True)
        loss(b).backward()
        message = "soft gradient differs: did you detach p?" if kind == "soft" else "hard gradient differs"
        require(_close(as_tensor(v, kind, logits.shape), b.grad, atol=1e-10), message)
    return full_marks(ctx)


@register(HW, "test_trimmed_mean_closed_form")
def trimmed_mean_closed_form(ctx):
    v = check_values(ctx)
    require(math.isclose(float(as_tensor(v, "out", ())), 2.0), "the trimmed mean of [1, 5, 2, 100, 3] at 0.4 is 2")
    require(_close(as_tensor(v, "grad", (5,)), torch.tensor([1 / 3, 0.0, 1 / 3, 0.0, 1 / 3])),
            "the dropped losses must get zero gradient, the kept ones 1/k")
    return full_marks(ctx)


@register(HW, "test_trimmed_mean_edges")
def trimmed_mean_edges(ctx):
    v = check_values(ctx)
    require(math.isclose(float(as_tensor(v, "none", ())), 4.0), "no trimming is the mean")
    require(math.isclose(float(as_tensor(v, "heavy", ())), 1.0), "heavy trimming keeps the smallest loss")
    rand = torch.rand(50, generator=torch.Generator().manual_seed(3))
    require(_close(as_tensor(v, "rand", ()), nl.trimmed_mean(rand, 0.3)), "differs from the reference at trim=0.3")
    return full_marks(ctx)


@register(HW, "test_class_weights")
def class_weights(ctx):
    v = check_values(ctx)
    require(_close(as_tensor(v, "small", (3,)), torch.tensor([4 / 9, 4 / 3, 0.0])), "weights of [0, 0, 0, 1]")
    require(_close(as_tensor(v, "balanced", (3,)), torch.ones(3)), "balanced classes get weight 1")
    labels = torch.randint(0, 4, (40,), generator=torch.Generator().manual_seed(1))
    require(_close(as_tensor(v, "random", (6,)), nl.class_weights_from_frequencies(labels, 6)),
            "differs from the reference (absent classes get 0)")
    return full_marks(ctx)


def _accuracies(v, key):
    acc = v.get(key)
    require(isinstance(acc, dict) and {"cross_entropy", "gce", "trimmed_mean"} <= set(acc), f"{key} is incomplete")
    try:
        return {k: float(acc[k]) for k in ("cross_entropy", "gce", "trimmed_mean")}
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"{key} holds something other than accuracies") from exc


@register(HW, "test_experiment_gce")
def experiment_gce(ctx):
    """The runs happen in the student's kernel: their outcome is checked against the
    instructor's thresholds, and counted only if the student's generalized_ce (which the
    GCE run used) agrees with the reference on the fixed batch."""
    v = check_values(ctx)
    logits, y = _inputs()
    require(_close(as_tensor(v, "probe_gce", ()), nl.generalized_cross_entropy(logits, y, q=0.7)),
            "the experiment used your generalized_ce, which differs from the reference")
    final_acc, best_acc = _accuracies(v, "final_acc"), _accuracies(v, "best_acc")
    drop, gain = float(as_tensor(v, "memorization_drop", ())), float(as_tensor(v, "gce_gain", ()))
    require(math.isclose(drop, best_acc["cross_entropy"] - final_acc["cross_entropy"], abs_tol=1e-9),
            "memorization_drop is best minus final accuracy of cross-entropy")
    require(drop > 0.05, "cross-entropy should lose accuracy as it memorizes the wrong labels")
    require(gain > 0.05, "your generalized cross entropy should end well above cross-entropy")
    require(math.isclose(gain, final_acc["gce"] - final_acc["cross_entropy"], abs_tol=1e-9),
            "gce_gain is the final accuracy of GCE minus that of cross-entropy")
    return full_marks(ctx)


@register(HW, "test_experiment_trimmed")
def experiment_trimmed(ctx):
    v = check_values(ctx)
    logits, y = _inputs()
    reference = nl.trimmed_mean(F.cross_entropy(logits, y, reduction="none"), 0.2)
    require(_close(as_tensor(v, "probe_trimmed", ()), reference),
            "the experiment used your trimmed_mean, which differs from the reference")
    final_acc = _accuracies(v, "final_acc")
    require(final_acc["trimmed_mean"] > final_acc["cross_entropy"], "the trimmed mean should beat plain cross-entropy")
    return full_marks(ctx)
