"""Homework 4 (learning to reweight): the grade cells' checks, run in the nbgrader process.

The hidden test regions of ``solutions/hw04_reweighting`` emit what the student's
functions return on fixed problems (:mod:`autograder.nbgrader_plugins.check_data`); the functions here
rebuild those problems, compute the reference values with ``noisylabels.reweight``,
finite differences and plain training in the grader process, and decide the points
(see :mod:`autograder.nbgrader_plugins.outside_kernel`). A cell gets its points only if all of its checks
(visible and hidden) hold.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import noisylabels as nl

from autograder.nbgrader_plugins.grading_edition import withhold
from autograder.nbgrader_plugins.outside_kernel import (
    as_tensor, check_values, full_marks, once_per_assignment, register, require,
)

HW = "hw04_reweighting"

#: What the students write themselves: all of Algorithm 1 in ``noisylabels.reweight``,
#: withheld while the notebook is graded (autograder/nbgrader_plugins/grading_edition.py), the forward-mode
#: helper included (it computes the same gradient). ``nl.imbalanced_pair``, ``nl.LeNet``,
#: ``nl.predict_proba`` and ``nl.balanced_error``, which the run uses, call none of them.
BLOCKED = withhold(HW, "homework 4", {
    "noisylabels.reweight": (
        "look_ahead", "validation_gradient", "rectify_and_normalize", "example_weights",
        "_forward_mode_step_parts", "reweighted_step", "fit_reweighted",
    ),
})


def tiny_problem(seed=0, n=8, n_val=5, num_classes=3):
    """The notebook's setup-cell problem (the same code): a float64 MLP and two batches."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, num_classes, (n,), generator=g)
    X_val = torch.randn(n_val, 6, generator=g, dtype=torch.float64)
    y_val = torch.randint(0, num_classes, (n_val,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, num_classes)).double()
    return model, X, y, X_val, y_val


def _params(model):
    return {name: p.detach() for name, p in model.named_parameters()}




def _tensors(values, key, reference: dict):
    d = values.get(key)
    require(isinstance(d, dict) and set(d) == set(reference), "the result must have the same names as params")
    return {k: as_tensor(d, k, reference[k].shape) for k in reference}


@register(HW, "test_look_ahead_params")
def look_ahead_params(ctx):
    v = check_values(ctx)
    model = tiny_problem()[0]
    params = _params(model)
    new = _tensors(v, "new", params)
    require(torch.allclose(new["2.bias"], params["2.bias"] - 0.5), "one step of size lr along the gradient")
    expected = nl.look_ahead(params, {k: torch.full_like(p, 2.0) for k, p in params.items()}, 0.25)
    require(all(torch.allclose(new[k], expected[k]) for k in params), "one step of size lr along the gradient")
    require(torch.equal(as_tensor(v, "weight_after", params["0.weight"].shape), params["0.weight"]),
            "params must not be changed in place")
    gen = torch.Generator().manual_seed(11)
    g = {k: torch.randn(p.shape, generator=gen, dtype=p.dtype) for k, p in params.items()}
    out = _tensors(v, "out", params)
    require(v.get("differentiable") is True, "the look-ahead must stay differentiable")
    require(all(torch.allclose(out[k], params[k] - 0.1 * g[k]) for k in params), "one step of size lr along grads")
    return full_marks(ctx)


def _loss_after_step(model, X, y, X_val, y_val, eps, lr=0.5):
    clone = copy.deepcopy(model)
    loss = (eps * F.cross_entropy(clone(X), y, reduction="none")).sum()
    step = torch.autograd.grad(loss, list(clone.parameters()))
    with torch.no_grad():
        for p, s in zip(clone.parameters(), step):
            p -= lr * s
        return F.cross_entropy(clone(X_val), y_val).item()


@register(HW, "test_validation_gradient_wrt_eps")
def validation_gradient_wrt_eps(ctx):
    v = check_values(ctx)
    model, X, y, X_val, y_val = tiny_problem()
    g = as_tensor(v, "g", (len(y),))
    require(torch.isfinite(g).all() and g.abs().max() > 0, "the gradient should be finite and not all zero")
    require(torch.allclose(as_tensor(v, "g_lr1", (len(y),)), 2 * g, rtol=1e-6), "at eps = 0 the gradient is proportional to lr")
    h = 1e-5
    numeric = []
    for i in range(len(y)):
        e = torch.zeros(len(y), dtype=torch.float64)
        e[i] = h
        numeric.append((_loss_after_step(model, X, y, X_val, y_val, e)
                        - _loss_after_step(model, X, y, X_val, y_val, -e)) / (2 * h))
    require(np.allclose(g.numpy(), numeric, rtol=1e-4, atol=1e-9), "does not match finite differences")
    m2, X2, y2, Xv2, yv2 = tiny_problem(seed=5)
    reference = nl.validation_gradient(m2, X2, y2, Xv2, yv2, 0.1)
    require(torch.allclose(as_tensor(v, "g_seed5", (len(y2),)), reference, rtol=1e-6, atol=1e-12),
            "differs from the reference on another problem")
    return full_marks(ctx)


@register(HW, "test_rectify_and_normalize_weights")
def rectify_and_normalize_weights(ctx):
    v = check_values(ctx)
    w = as_tensor(v, "w", (4,))
    require(torch.allclose(w, torch.tensor([0.25, 0.0, 0.75, 0.0], dtype=torch.float64)), f"got {w.tolist()}")
    require(torch.equal(as_tensor(v, "zero", (4,)), torch.zeros(4, dtype=torch.float64)), "all zero must stay zero")
    gen = torch.Generator().manual_seed(12)
    negative = as_tensor(v, "negative", (6,))
    torch.rand(6, generator=gen)
    require(torch.equal(negative, torch.zeros(6, dtype=torch.float64)), "all negative gives all zeros, not nan")
    u = torch.randn(50, generator=gen)
    r = as_tensor(v, "random", (50,))
    require(torch.isclose(r.sum(), torch.tensor(1.0, dtype=torch.float64)) and (r >= 0).all(),
            "the weights are non-negative and sum to 1")
    require(torch.allclose(r, nl.rectify_and_normalize(u).double(), atol=1e-7), "differs from max(u, 0) / sum")
    return full_marks(ctx)


def _reference_step(model, X, y, X_val, y_val, lr, step_lr):
    """The reference step: weights from noisylabels.reweight, one SGD step on the weighted loss."""
    w = nl.example_weights(model, X, y, X_val, y_val, lr).detach()
    opt = torch.optim.SGD(model.parameters(), lr=step_lr)
    opt.zero_grad()
    (w * F.cross_entropy(model(X), y, reduction="none")).sum().backward()
    opt.step()
    return w


@once_per_assignment
def plain_error(proportion=0.99, num_steps=None, seed=0) -> float:
    """The notebook's ``train_and_test(plain_step)``, run here: balanced test error of a
    LeNet on MNIST 4 vs 9 trained without weights (the baseline the run is compared with).
    The same for every submission: computed once per class (about 30 s on a busy 2-core machine)."""
    num_steps = num_steps or (150 if nl.run_size() == "quick" else 300)
    (Xtr, ytr), (Xv, yv), (Xte, yte) = nl.imbalanced_pair(proportion, seed=seed)
    nl.seed_everything(seed)
    net = nl.LeNet(num_classes=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    step = 0
    while step < num_steps:
        order = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), 100):
            idx = order[i:i + 100]
            opt.zero_grad()
            F.cross_entropy(net(Xtr[idx]), ytr[idx]).backward()
            opt.step()
            step += 1
    return float(nl.balanced_error(nl.predict_proba(net, Xte), yte))


@register(HW, "test_reweight_step")
def reweight_step(ctx):
    """The step is checked against the reference on two fixed problems; the MNIST run
    happens in the student's kernel (its error is reported, not recomputed) and is compared
    with the unweighted baseline that the grader trains itself."""
    v = check_values(ctx)
    model, X, y, X_val, y_val = tiny_problem(seed=4)
    w_ref = _reference_step(model, X, y, X_val, y_val, lr=0.1, step_lr=0.1)
    w = as_tensor(v, "w", (len(y),))
    require(torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64)), f"the weights must sum to 1, got {w.tolist()}")
    require(torch.allclose(w, w_ref, atol=1e-8), "the weights differ from the reference weights")
    stepped = _tensors(v, "stepped", _params(model))
    require(all(torch.allclose(stepped[k], p, atol=1e-8) for k, p in _params(model).items()),
            "the optimizer must step on the weighted loss")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 2))
    Xd = torch.randn(6, 1, 4, 4)
    yd = torch.tensor([0, 1, 0, 1, 0, 1])
    Xd[5] = Xd[4]
    w_dup_ref = _reference_step(net, Xd, yd, Xd[4:5].clone(), yd[4:5].clone(), lr=0.1, step_lr=0.1)
    w_dup = as_tensor(v, "w_duplicate", (6,))
    require(w_dup[5] == 0 and w_dup[4] > 0, f"the flipped duplicate should get weight 0, got {float(w_dup[5]):.3g}")
    require(torch.allclose(w_dup, w_dup_ref.double(), atol=1e-6), "the weights differ from the reference weights")
    error_reweighted = float(as_tensor(v, "error_reweighted", ()))
    error_plain = plain_error()
    require(error_reweighted < error_plain - 0.1,
            f"balanced test error: plain {error_plain:.3f}, reweighted {error_reweighted:.3f}")
    return full_marks(ctx)
