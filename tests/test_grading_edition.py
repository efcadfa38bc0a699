"""The library's reference implementations are withheld while a homework is graded (autograder/nbgrader_plugins/grading_edition.py).

Quick tests build each homework's grading edition and import it in a fresh Python (a
copy of the package); the sandbox tests run hostile cells in a sandboxed autograde kernel,
as ``nbgrader autograde`` does, and try to get the originals back.
"""

import json
import os
import py_compile
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.nbgrader_plugins import grading_edition, hw01_grading, hw03_grading, hw04_grading

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "noisylabels"
HOMEWORKS = {g.HW: g.BLOCKED for g in (hw01_grading, hw03_grading, hw04_grading)}


def _edited_copy(tmp_path, assignment):
    """A copy of the package with ``assignment``'s editions in place of the originals."""
    copy = tmp_path / "site" / "noisylabels"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    entry = grading_edition.withheld(assignment)
    for module, names in entry.names.items():
        path = grading_edition.module_file(module)
        (copy / path.name).write_text(
            grading_edition.edition_source(path.read_text(), module, names, entry.homework))
    return copy.parent


def _python(site, code, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                         text=True, timeout=timeout, cwd=site)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_blocked_name_is_a_top_level_definition_of_its_module():
    for assignment, entry in HOMEWORKS.items():
        assert entry is grading_edition.withheld(assignment)
        for module, names in entry.names.items():
            source = grading_edition.module_file(module).read_text()
            edition = grading_edition.edition_source(source, module, names, entry.homework)
            assert edition != source and grading_edition.ERROR_NAME in edition


def test_a_renamed_function_stops_the_edition_instead_of_leaving_the_original():
    with pytest.raises(grading_edition.EditionError, match="no top-level corrupt_labels_v2"):
        grading_edition.edition_source("def corrupt_labels():\n    return 1\n", "noisylabels.noise",
                                       ("corrupt_labels_v2",), "homework 1")
    with pytest.raises(grading_edition.EditionError, match="subclasses withheld"):
        grading_edition.edition_source("class A:\n    pass\n\n\nclass B(A):\n    pass\n", "m", ("A",), "hw")


def test_edition_keeps_everything_else_line_for_line():
    source = ("import os\n\n\n@decorator(1)\ndef gone(a, b=2):\n    '''doc'''\n    return a + b  # SECRET\n\n\n"
              "def kept():\n    return gone(1)\n\n\nclass Gone(Base):\n    def f(self):\n        return 'SECRET'\n")
    edition = grading_edition.edition_source(source, "pkg.mod", ("gone", "Gone"), "homework 9")
    assert "SECRET" not in edition and "@decorator" not in edition
    assert "import os\n" in edition and "def kept():\n    return gone(1)\n" in edition
    namespace = {}
    exec(edition, namespace)
    for call in (lambda: namespace["gone"](1), lambda: namespace["Gone"](), namespace["kept"]):
        with pytest.raises(RuntimeError, match="is not available while homework 9 is graded: implement it yourself"):
            call()


@pytest.mark.parametrize("assignment", sorted(HOMEWORKS))
def test_edited_library_raises_for_blocked_names_and_keeps_what_the_homework_uses(assignment, tmp_path):
    site = _edited_copy(tmp_path, assignment)
    entry = HOMEWORKS[assignment]
    uses = {
        "hw01_label_corruption": """
            X, y, X_test, y_test = nl.load_small_digits()
            T = nl.expected_transition_matrix(0.4, 10)
            h = nl.fit(nl.MLP(64, (16,), 10), (X[:200], y[:200]), (X_test[:100], y_test[:100]), num_epochs=1,
                       progress=False)
            from noisylabels.plots import plot_corruption_curve, plot_transition_matrix
            ok = [T.shape == (10, 10), len(h.test_acc) == 1]
        """,
        "hw03_robust_losses": """
            X, y_true, X_test, y_test = nl.load_offline_mnist()
            y_noisy, is_mislabeled = nl.corrupt_labels(y_true[:300], 0.4, 10, kind="flip", seed=0)
            h = nl.fit(nl.MLP(hidden=(16,)), (X[:300], y_noisy), (X_test[:100], y_test[:100]), num_epochs=1,
                       optimizer="adam", loss_fn=torch.nn.CrossEntropyLoss(), progress=False, eval_train=False)
            ok = [len(h.test_acc) == 1, bool(is_mislabeled.any())]
        """,
        "hw04_reweighting": """
            (Xtr, ytr), (Xv, yv), (Xte, yte) = nl.imbalanced_pair(0.99, seed=0)
            net = nl.LeNet(num_classes=2)
            err = nl.balanced_error(nl.predict_proba(net, Xte), yte)
            ok = [len(ytr) > 0, 0 <= err <= 1]
        """,
    }[assignment]
    checks = [f"{module}.{name}" for module, names in entry.names.items() for name in names]
    out = _python(site, f"""
        import importlib, json, torch
        import noisylabels as nl
        assert nl.__file__.startswith({str(site)!r}), nl.__file__
        {textwrap.indent(textwrap.dedent(uses), "        ").strip()}
        messages = {{}}
        for dotted in {checks!r}:
            module, name = dotted.rsplit(".", 1)
            mod = importlib.reload(importlib.import_module(module))
            try:
                getattr(mod, name)(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
                messages[dotted] = "ran"
            except Exception as exc:
                messages[dotted] = type(exc).__name__ + ": " + str(exc)
        print(json.dumps({{"ok": ok, "messages": messages}}))
    """)
    assert all(out["ok"]), out
    number = entry.homework.split()[-1]
    for dotted, message in out["messages"].items():
        assert message.startswith("NotAvailableWhileGraded: noisylabels."), (dotted, message)
        assert message.endswith(f"is not available while homework {number} is graded: implement it yourself")


# ----------------------------------------------------------------------------- in the grading sandbox
ATTEMPTS = [
    # 0: a call
    "import numpy as np, noisylabels as nl\ntry:\n    nl.corrupt_labels(np.arange(10), 0.5, 10)\n"
    "except Exception as e:\n    print(type(e).__name__, e)",
    # 1: reload the module and the package
    "import importlib\nimportlib.reload(nl.noise); importlib.reload(nl)\ntry:\n"
    "    nl.noise.corrupt_labels(np.arange(10), 0.5, 10)\nexcept Exception as e:\n    print(type(e).__name__)",
    # 2: the source file as the kernel sees it
    "src = open(nl.noise.__file__).read()\nprint('rng.random(len(y_np))' in src, 'np.add.at(counts' in src,"
    " 'self._label_of' in src, 'NotAvailableWhileGraded' in src)",
    # 3: exec of that file, and a fresh import of it under another name
    "ns = {'__name__': 'noisylabels.noise', '__package__': 'noisylabels'}\n"
    "exec(compile(open(nl.noise.__file__).read(), nl.noise.__file__, 'exec'), ns)\n"
    "import importlib.util\nspec = importlib.util.spec_from_file_location('noisylabels.copy_of_noise', nl.noise.__file__)\n"
    "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\nfor f in (ns['corrupt_labels'],"
    " mod.corrupt_labels, mod.MislabeledDataset, mod.noise_transition_matrix):\n    try:\n        f([0], 0.5, 2)\n"
    "        print('ran')\n    except Exception as e:\n        print(type(e).__name__)",
    # 4: compiled files and any other copy of the code in the course's folders
    "import os, sys\nfound = []\nfor top in {os.path.dirname(nl.__file__), os.path.dirname(os.path.dirname(nl.__file__))}:\n"
    "    for d, _, files in os.walk(top):\n        for f in files:\n            try:\n"
    "                data = open(os.path.join(d, f), 'rb').read()\n            except OSError:\n                continue\n"
    "            if b'rng.integers(0, num_classes, n)' in data or (f.startswith('noise.') and f.endswith('.pyc')):\n"
    "                found.append(os.path.join(d, f))\nprint('found:', found)",
    # 5: what homework 1 uses still works
    "import warnings\nwarnings.filterwarnings('ignore')\nX, y, X_test, y_test = nl.load_small_digits()\n"
    "print(nl.expected_transition_matrix(0.4, 10).shape, len(X) > 1000)",
]


def run_graded(folder, assignment, cells, timeout=120):
    from autograder.nbgrader_plugins.kernel_sandbox import SandboxedExecute

    nb = new_notebook(cells=[new_code_cell(s) for s in cells])
    resources = {"metadata": {"path": str(folder)}, "nbgrader": {"assignment": assignment, "student": "s"}}
    nb, _ = SandboxedExecute(timeout=timeout, allow_errors=True).preprocess(nb, resources)
    return ["".join(o.get("text", "") or (o.get("ename", "") + ": " + o.get("evalue", "")) for o in c.outputs)
            for c in nb.cells]


@pytest.mark.usefixtures("require_sandbox")
def test_graded_kernel_has_no_original_even_after_reload_exec_or_reading_the_files(tmp_path):
    cache = PACKAGE / "__pycache__"
    made_cache = not cache.exists()
    compiled = Path(py_compile.compile(str(PACKAGE / "noise.py"), doraise=True))  # as an instructor's machine has
    try:
        out = run_graded(tmp_path, "hw01_label_corruption", ATTEMPTS)
    finally:
        compiled.unlink(missing_ok=True)
        if made_cache:
            shutil.rmtree(cache, ignore_errors=True)
    assert out[0].strip() == ("NotAvailableWhileGraded noisylabels.corrupt_labels is not available while "
                              "homework 1 is graded: implement it yourself"), out[0]
    assert out[1].strip() == "NotAvailableWhileGraded", out[1]
    assert out[2].split() == ["False", "False", "False", "True"], out[2]
    assert out[3].split() == ["NotAvailableWhileGraded"] * 4, out[3]
    assert out[4].strip() == "found: []", out[4]
    assert out[5].split() == ["(10,", "10)", "True"], out[5]


@pytest.mark.usefixtures("require_sandbox")
def test_other_assignments_and_plain_kernels_keep_the_whole_library(tmp_path):
    cell = ("import numpy as np, noisylabels as nl\nprint(nl.corrupt_labels(np.arange(10), 0.5, 10, seed=0)[0].shape)\n"
            "try:\n    nl.trimmed_mean\n    import torch\n    print(float(nl.trimmed_mean(torch.ones(4), 0.5)))\n"
            "except Exception as e:\n    print(type(e).__name__)")
    assert run_graded(tmp_path, "hw03_robust_losses", [cell])[0].split() == ["(10,)", "NotAvailableWhileGraded"]
    assert run_graded(tmp_path, "hw02_evil_twins", [cell])[0].split() == ["(10,)", "1.0"]


@pytest.mark.usefixtures("require_sandbox")
def test_autograde_stops_before_any_kernel_when_a_withheld_name_is_gone(tmp_path):
    from autograder.nbgrader_plugins.kernel_sandbox import SandboxedExecute

    grading_edition.withhold("hw99_renamed", "homework 99", {"noisylabels.noise": ("corrupt_labels_renamed",)})
    nb = new_notebook(cells=[new_code_cell("open('ran.txt', 'w').write('kernel ran')")])
    resources = {"metadata": {"path": str(tmp_path)}, "nbgrader": {"assignment": "hw99_renamed", "student": "s"}}
    with pytest.raises(grading_edition.EditionError, match="corrupt_labels_renamed"):
        SandboxedExecute(timeout=30, allow_errors=True).preprocess(nb, resources)
    assert not nb.cells[0].get("outputs")


def _distinctive_lines(entry):
    """The longest code line of each withheld definition's body, as the real library has it."""
    import ast
    import importlib

    lines = {}
    for module, names in entry.names.items():
        source = grading_edition.module_file(module).read_text()
        for node in ast.parse(source).body:
            if getattr(node, "name", None) in names:
                body = source.splitlines()[node.body[0].lineno - 1:node.end_lineno]
                code = [line.strip() for line in body if line.strip() and not line.strip().startswith(("#", '"', "'"))]
                lines[f"{module}.{node.name}"] = max(code, key=len)
        importlib.import_module(module)
    return lines


@pytest.mark.usefixtures("require_sandbox")
@pytest.mark.parametrize("assignment", ["hw03_robust_losses", "hw04_reweighting"])
def test_no_file_the_graded_kernel_can_read_holds_the_withheld_code(assignment, tmp_path):
    lines = _distinctive_lines(HOMEWORKS[assignment])
    search = (
        "import os, noisylabels as nl\n"
        f"needles = {sorted(set(lines.values()))!r}\n"
        "found = set()\n"
        "for top in {os.path.dirname(nl.__file__), os.path.dirname(os.path.dirname(nl.__file__))}:\n"
        "    for d, _, files in os.walk(top):\n"
        "        for f in files:\n"
        "            try:\n"
        "                data = open(os.path.join(d, f), 'rb').read()\n"
        "            except OSError:\n"
        "                continue\n"
        "            found.update((n, os.path.join(d, f)) for n in needles if n.encode() in data)\n"
        "print('found:', sorted(found))"
    )
    out = run_graded(tmp_path, assignment, [search], timeout=300)
    assert out[0].strip() == "found: []", out[0][:3000]
