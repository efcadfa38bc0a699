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
    out = run_cells(tmp_path, "import time\nwhile True:\n    time.sleep(0.1)", "print('after')", timeout=5)
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
