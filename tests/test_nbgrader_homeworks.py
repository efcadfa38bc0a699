"""Homeworks 1, 3 and 4 through the real nbgrader, graded outside the students' kernels.

For each homework, in a copy of the course: register it in the gradebook
(``noisylabels assignments NAME --register``), submit seven versions (the solution, the
untouched student version, a broken one, the broken one with two kinds of cheating
cells, and the graded functions written as calls to the library, with and without a cell
that tries to get the library's withheld originals back), ``nbgrader autograde``, ``nbgrader export`` and ``nbgrader generate_feedback``.
Slow: every submission runs its notebook in quick mode.
"""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.nbgrader_plugins import hw01_grading, hw03_grading, hw04_grading  # noqa: F401 (they declare what is withheld)
from autograder.nbgrader_plugins.grading_edition import withheld
from autograder.nbgrader_plugins.preprocessors import hidden_lines
from noisylabels.course import tool_env

ROOT = Path(__file__).resolve().parent.parent

# One cell placed right after the setup cell: it patches everything the in-kernel tests
# used to rely on (comparison helpers, math.isclose, the course library's references).
PATCH_CHEAT = '''\
import math, builtins
import numpy
import torch
import noisylabels as _nl
numpy.allclose = numpy.array_equal = lambda *a, **k: True
torch.allclose = torch.equal = lambda *a, **k: True
torch.isclose = lambda *a, **k: torch.tensor(True)
math.isclose = lambda *a, **k: True
for _name in dir(_nl):
    if callable(getattr(_nl, _name)) and not isinstance(getattr(_nl, _name), type):
        setattr(_nl, _name, lambda *a, **k: a[0] if a else None)
builtins.AssertionError = type("NotAnError", (Exception,), {})
'''

# Replaces the kernel-side reporter: every reported value becomes a plausible constant,
# and a second, hand-made check object claims everything passed.
FORGE_CHEAT = '''\
from IPython.display import display
import autograder.nbgrader_plugins.check_data as _cd
def _forged(**values):
    display({_cd.MIME: {"version": 1, "values": {k: 1.0 for k in values}}}, raw=True)
_cd.emit = _forged
'''

# Tries to get the library's originals back in the graded kernel: reload, exec of the module's
# file from disk, a fresh import of it under another name, then patches the results in.
RESTORE_CHEAT = '''\
import importlib, importlib.util
import noisylabels as _nl
for _module in {BLOCKED}:
    _mod = importlib.reload(importlib.import_module(_module))
    _ns = {{"__name__": _module, "__package__": "noisylabels"}}
    exec(compile(open(_mod.__file__).read(), _mod.__file__, "exec"), _ns)
    _spec = importlib.util.spec_from_file_location(_module + "_copy", _mod.__file__)
    _copy = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_copy)
    for _name in {BLOCKED}[_module]:
        for _target in (_mod, _nl):
            setattr(_target, _name, getattr(_copy, _name, _ns.get(_name)))
'''

HOMEWORKS = {
    "hw01_label_corruption": {
        "points": 12.0,
        # the graded functions as calls to the library: withheld while grading, so no points
        "library": {
            "corrupt_uniform": "def corrupt_uniform(y, noise_rate, num_classes, seed=0):\n"
                               "    return nl.corrupt_labels(y, noise_rate, num_classes, seed=seed)",
            "transition_matrix": "def transition_matrix(y_true, y_noisy, num_classes):\n"
                                 "    return nl.noise_transition_matrix(y_true, y_noisy, num_classes)",
            "mislabels": "def draw_mislabels(n, frac_mislabeled, num_classes, seed=0):\n"
                         "    data = nl.MislabeledDataset([(0, 0)] * n, frac_mislabeled, num_classes, seed=seed)\n"
                         "    return data.drawn_indices, data.drawn_labels\n\n\n"
                         "def serve_labels(y, drawn_indices, drawn_labels):\n"
                         "    served = np.array(y, dtype=np.int64, copy=True)\n"
                         "    served[drawn_indices] = drawn_labels\n"
                         "    return served",
        },
        # draw the new labels before choosing which to replace: right rates, wrong draws
        "break": ("corrupt_uniform", "chosen = rng.random(len(y)) < noise_rate\n    y_noisy = y.copy()\n"
                  "    y_noisy[chosen] = rng.integers(0, num_classes, int(chosen.sum()))",
                  "new = rng.integers(0, num_classes, len(y))\n    chosen = rng.random(len(y)) < noise_rate\n"
                  "    y_noisy = y.copy()\n    y_noisy[chosen] = new[chosen]"),
    },
    "hw03_robust_losses": {
        "points": 15.0,
        "library": {
            "label_smoothing_ce": "def label_smoothing_ce(logits, y, eps=0.1):\n"
                                  "    return nl.label_smoothing_cross_entropy(logits, y, eps)",
            "generalized_ce": "def generalized_ce(logits, y, q=0.7):\n    return nl.generalized_cross_entropy(logits, y, q)",
            "bootstrap_loss": "def bootstrap_loss(logits, y, beta=0.95, kind='soft'):\n"
                              "    return (nl.bootstrap_soft_loss if kind == 'soft' else nl.bootstrap_hard_loss)(logits, y, beta)",
            "trimmed_mean": "def trimmed_mean(losses, trim=0.2):\n    return nl.trimmed_mean(losses, trim)",
            "class_weights": "def class_weights(y, num_classes):\n    return nl.class_weights_from_frequencies(y, num_classes)",
        },
        # class weights without the absent-class rule and with a wrong formula
        "break": ("class_weights", "weights[present] = len(y) / (num_classes * counts[present])",
                  "weights[present] = 1.0 / counts[present]"),
    },
    "hw04_reweighting": {
        "points": 11.0,
        "library": {
            "look_ahead_params": "def look_ahead_params(params, grads, lr):\n    return nl.look_ahead(params, grads, lr)",
            "validation_gradient_wrt_eps": "def validation_gradient_wrt_eps(model, X, y, X_val, y_val, lr):\n"
                                           "    return nl.validation_gradient(model, X, y, X_val, y_val, lr)",
            "rectify_and_normalize_weights": "def rectify_and_normalize_weights(u):\n    return nl.rectify_and_normalize(u)",
            "reweight_step": "def reweight_step(model, optimizer, X, y, X_val, y_val, lr):\n"
                             "    return nl.reweighted_step(model, optimizer, X, y, X_val, y_val, lr=lr)[0]",
        },
        # no special case for all-negative u: 0 / 0
        "break": ("rectify_and_normalize_weights", "return w / total if total > 0 else torch.zeros_like(w)",
                  "return w / (total + 1e-12) if total > 0 else torch.full_like(w, 0.5)"),
    },
}


def _strip_solution_markers(source):
    return "\n".join(line for line in source.split("\n") if "BEGIN SOLUTION" not in line
                     and "END SOLUTION" not in line)


def _submission(released, source, broken=None, cheat=None, edit_locked=False, replace=None):
    """The released notebook with the source's solutions filled in (or left as stubs);
    ``replace`` maps solution cells (grade ids) to other code."""
    nb = nbformat.read(released, as_version=4)
    if source is not None:
        answers = {c.metadata["nbgrader"]["grade_id"]: c.source
                   for c in nbformat.read(source, as_version=4).cells if c.metadata.get("nbgrader", {}).get("solution")}
        for cell in nb.cells:
            md = cell.metadata.get("nbgrader", {})
            if md.get("solution"):
                cell.source = _strip_solution_markers(answers[md["grade_id"]])
                if replace and md["grade_id"] in replace:
                    cell.source = replace[md["grade_id"]]
                if broken and md["grade_id"] == broken[0]:
                    assert broken[1] in cell.source, broken[1]
                    cell.source = cell.source.replace(broken[1], broken[2])
    if cheat:
        setup = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
        nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(cheat))
    if edit_locked:
        grade = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
        grade.source = "pass  # nothing to test here"
    return nb


def _run(args, course, env, timeout=2400):
    run = subprocess.run(args, cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return run


def _course(tmp_path, name):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / name, course / "solutions" / name,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = dict(os.environ, NOISYLABELS_SIZE="quick", OMP_NUM_THREADS="1")
    env = tool_env(env)  # this interpreter's bin folder first on PATH
    env.pop("NOISYLABELS_GRADEBOOK", None)
    env.pop("NOISYLABELS_ROOT", None)
    return course, env


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOMEWORKS))
def test_autograde_outside_kernel_gives_points_earned_and_cheating_gains_nothing(name, tmp_path):
    spec = HOMEWORKS[name]
    course, env = _course(tmp_path, name)
    _run([sys.executable, "-m", "noisylabels.cli", "assignments", name, "--register"], course, env)
    released = course / "assignments" / name / f"{name}.ipynb"
    source = course / "solutions" / name / f"{name}.ipynb"
    assert "BEGIN HIDDEN TESTS" not in released.read_text()

    submissions = {
        "solution": _submission(released, source),
        "untouched": _submission(released, None),
        "broken": _submission(released, source, broken=spec["break"]),
        "cheat_patch": _submission(released, source, broken=spec["break"], cheat=PATCH_CHEAT, edit_locked=True),
        "cheat_forge": _submission(released, source, broken=spec["break"], cheat=FORGE_CHEAT),
        "library": _submission(released, source, replace=spec["library"]),
        "library_restore": _submission(released, source, replace=spec["library"],
                                       cheat=RESTORE_CHEAT.format(BLOCKED=dict(withheld(name).names))),
    }
    assert set(spec["library"]) <= {c.metadata.get("nbgrader", {}).get("grade_id") for c in submissions["library"].cells}
    for student, nb in submissions.items():
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{name}.ipynb")

    graded = _run([sys.executable, "-m", "nbgrader", "autograde", name], course, env)
    log = graded.stdout + graded.stderr
    _run([sys.executable, "-m", "nbgrader", "export", "--to", str(tmp_path / "nbgrader_grades.csv")], course, env)
    scores = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(open(tmp_path / "nbgrader_grades.csv"))}

    assert scores["solution"] == spec["points"], scores
    assert scores["untouched"] == 0.0, scores
    assert 0 < scores["broken"] < spec["points"], scores
    assert scores["cheat_patch"] <= scores["broken"], scores
    assert scores["cheat_forge"] <= scores["broken"], scores
    # the library's versions of the graded functions are withheld in the graded kernel, even
    # from a cell that reloads, execs or re-imports the module's file
    assert scores["library"] == 0.0 and scores["library_restore"] == 0.0, scores
    number = int(name[2:4])
    for student in ("library", "library_restore"):
        text = (course / "autograded" / student / name / f"{name}.ipynb").read_text()
        assert f"is not available while homework {number} is graded: implement it yourself" in text, student
    # honest submissions raise no tampering alarm; the edited locked cell does
    changed = re.findall(r"Attribute 'checksum' for cell (\S+) has changed", log)
    assert len(changed) == 1, log[-3000:]

    # the grade cells show the grader's verdict, computed outside the kernel
    autograded = (course / "autograded" / "solution" / name / f"{name}.ipynb").read_text()
    assert "graded outside your notebook" in autograded

    _run([sys.executable, "-m", "nbgrader", "generate_feedback", name], course, env)
    hidden = [line for cell in nbformat.read(source, as_version=4).cells if cell.cell_type == "code"
              for line in hidden_lines(cell.source)]
    visible = {line.strip() for cell in nbformat.read(released, as_version=4).cells for line in cell.source.split("\n")}
    hidden = [line for line in hidden if line not in visible]
    assert hidden
    for student in ("untouched", "broken", "cheat_patch", "cheat_forge"):
        html = (course / "feedback" / student / name / f"{name}.html").read_text()
        import html as html_lib

        text = html_lib.unescape(re.sub(r"<[^>]+>", "", html))
        leaked = [line for line in hidden if len(line) > 6 and line in text]
        assert not leaked, (student, leaked[:5])
        assert "application/vnd.noisylabels.check+json" not in html
        # readable offline: no script at all (no MathJax from a CDN), math drawn as MathML
        assert "<script" not in html.lower(), student
        if "$" in "".join(c.source for c in nbformat.read(released, as_version=4).cells if c.cell_type == "markdown"):
            assert "<math" in html, student
