"""Notebook kernels during autograde run in the grading sandbox (autograder/nbgrader_plugins/kernel_sandbox.py).

One notebook of hostile cells runs through ``SandboxedExecute`` (nbgrader's ``Execute``
with the sandboxed kernel manager), as ``nbgrader autograde`` runs a submission.
"""

from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder import sandbox
from autograder.nbgrader_plugins.kernel_sandbox import SandboxedExecute

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("require_sandbox")


def run_cells(folder, *sources, timeout=60):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb, _ = SandboxedExecute(timeout=timeout, allow_errors=True).preprocess(nb, {"metadata": {"path": str(folder)}})
    return ["".join(o.get("text", "") or o.get("ename", "") for o in c.outputs) for c in nb.cells]


def sandbox_pids():
    """Processes of the sandbox uids that no run (of this or another grader) holds: leftovers."""
    return sandbox.leftover_processes()


def test_kernel_runs_isolated_with_the_course_library_and_a_throwaway_copy_of_its_folder(tmp_path):
    (tmp_path / "data.txt").write_text("given")
    secret = tmp_path.parent / "gradebook.db"
    secret.write_text("grades")
    out = run_cells(
        tmp_path,
        "import os\nprint(os.getuid() >= 61000, sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
        "import noisylabels, torch\nprint('library ok')",
        "print(open('data.txt').read()); open('data.txt', 'w').write('changed'); open('new.txt', 'w').write('x')",
        f"for path in [{str(secret)!r}, {str(ROOT / 'README.md')!r}, {str(ROOT / 'solutions')!r}]:\n"
        "    print(os.path.exists(path))",
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 443), timeout=2); print('network')\n"
        "except OSError:\n    print('no network')",
        "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True); print('daemon started')",
    )
    assert out[0].strip() == "True [1, 2]"
    assert out[1].strip() == "library ok"
    assert out[2].strip() == "given"
    assert out[3].split() == ["False", "False", "False"]
    assert out[4].strip() == "no network"
    assert (tmp_path / "data.txt").read_text() == "given" and not (tmp_path / "new.txt").exists()
    assert secret.read_text() == "grades"
    assert sandbox_pids() == []


def test_a_cell_that_never_ends_is_interrupted_and_the_rest_still_runs(tmp_path):
    out = run_cells(tmp_path, "import time\nwhile True:\n    time.sleep(0.1)", "print('after')", timeout=2)
    assert "KeyboardInterrupt" in out[0] or "CellTimeoutError" in out[0]
    assert out[1].strip() == "after"
    assert sandbox_pids() == []


def test_figures_render_without_error_output(tmp_path):
    nb = new_notebook(cells=[new_code_cell(
        "import matplotlib.pyplot as plt\nfrom noisylabels.plots import show_images\nimport numpy as np\n"
        "show_images(np.zeros((2, 28, 28)), titles=['a', 'b']);\nplt.show()")])
    nb, _ = SandboxedExecute(timeout=120, allow_errors=True).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    outputs = nb.cells[0].outputs
    assert [o for o in outputs if o.output_type == "stream" and o.name == "stderr"] == []
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs)


def _grade_cell(grade_id, source, points=1):
    return new_code_cell(source, metadata={"nbgrader": {
        "grade": True, "grade_id": grade_id, "locked": True, "points": points, "schema_version": 3,
        "solution": False, "task": False}})


@pytest.mark.slow
def test_a_notebook_past_its_wall_clock_limit_is_stopped_and_the_cells_left_score_zero(tmp_path):
    """``nbgrader autograde`` with ``SandboxedExecute.notebook_timeout`` set to 20 s in the course config."""
    import csv
    import sys

    import nbformat
    from test_nbgrader_homeworks import _course, _run

    course, env = _course(tmp_path, "hw01_label_corruption")
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write("\nc.SandboxedExecute.notebook_timeout = 20\n")
    answer = new_code_cell("### BEGIN SOLUTION\nanswer = 1\n### END SOLUTION", metadata={"nbgrader": {
        "grade": False, "grade_id": "answer", "locked": False, "schema_version": 3, "solution": True, "task": False}})
    source = new_notebook(cells=[_grade_cell("first", "print('first ran')"), answer,
                                 *[_grade_cell(f"check{i}", "assert answer == 1") for i in range(6)]])
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (course / "solutions" / "tiny").mkdir()
    nbformat.write(source, course / "solutions" / "tiny" / "tiny.ipynb")
    _run([sys.executable, "-m", "nbgrader", "generate_assignment", "tiny"], course, env)
    released = nbformat.read(course / "assignments" / "tiny" / "tiny.ipynb", as_version=4)
    for student, code in (("stubborn", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                       "while True:\n    time.sleep(0.1)"),
                          ("honest", "answer = 1")):
        nb = nbformat.from_dict(released)
        next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == "answer").source = code
        (course / "submitted" / student / "tiny").mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / "tiny" / "tiny.ipynb")

    # without the notebook limit, the stubborn notebook alone would take 600 s a cell
    _run([sys.executable, "-m", "nbgrader", "autograde", "tiny"], course, env, timeout=400)
    _run([sys.executable, "-m", "nbgrader", "export", "--to", str(tmp_path / "grades.csv")], course, env)
    scores = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert scores == {"stubborn": 1.0, "honest": 7.0}, scores

    graded = nbformat.read(course / "autograded" / "stubborn" / "tiny" / "tiny.ipynb", as_version=4)
    said = {c.metadata["nbgrader"]["grade_id"]: " ".join(o.get("evalue", "") for o in c.outputs)
            for c in graded.cells}
    assert said["answer"] == "the notebook ran past its 20-second limit: this cell was stopped", said
    assert all(said[f"check{i}"] == "the notebook ran past its 20-second limit: this cell was not run"
               for i in range(6)), said
    _run([sys.executable, "-m", "nbgrader", "generate_feedback", "tiny"], course, env)
    feedback = (course / "feedback" / "stubborn" / "tiny" / "tiny.html").read_text()
    assert "the notebook ran past its 20-second limit" in feedback
    assert sandbox_pids() == []
