"""``noisylabels lab``: start JupyterLab at the course root, set up for students or instructors.

Students (``noisylabels lab``): JupyterLab opens on ``lessons/`` with the whole course
(``lessons/``, ``assignments/``) reachable; nbgrader's instructor plugins (Nbgrader menu,
Formgrader, Create Assignment, Course List, Assignment List) and their server extensions
are disabled for this server only, through the course's ``jupyter/student`` settings
folder (nbgrader's documented per-environment switch is ``jupyter labextension disable``
and ``jupyter server extension disable``; a settings folder on ``JUPYTER_CONFIG_PATH`` does
the same without changing the environment the instructor uses). Validate stays.

Instructors (``noisylabels lab --instructor``): every nbgrader tool, the exchange folder
in the course (``exchange/``, created here), the formgrader's MathJax served locally.

Both: the server sends the course's Content-Security-Policy (``jupyter/common``).

On a machine with few cores each kernel runs one PyTorch/BLAS thread (``--threads``):
on the 2-core course machine, shared with other work, a LeNet epoch took 10x longer with
two threads fighting a busy process than with one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["default_threads", "lab_command", "main"]

SMALL_MACHINE_CORES = 4
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_threads(cpu_count: int | None = None) -> int | None:
    """One thread a kernel on a machine with at most 4 cores; otherwise leave the libraries' default."""
    cpu_count = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return 1 if cpu_count <= SMALL_MACHINE_CORES else None


def _prepend(env: dict, name: str, folder: Path) -> None:
    rest = env.get(name)
    env[name] = str(folder) + (os.pathsep + rest if rest else "")


def lab_command(root, instructor: bool = False, threads: int | None = None, extra=(),
                env: dict | None = None) -> tuple[list[str], dict]:
    """The ``jupyter lab`` command line and environment for the course at ``root``."""
    root = Path(root).resolve()
    settings = root / "jupyter"
    env = dict(os.environ if env is None else env)
    _prepend(env, "JUPYTER_CONFIG_PATH", settings / "common")  # the Content-Security-Policy
    _prepend(env, "JUPYTER_CONFIG_PATH", settings / ("instructor" if instructor else "student"))
    _prepend(env, "JUPYTER_PATH", settings / "share")
    if threads is not None:
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
    env.setdefault("NOISYLABELS_ROOT", str(root))
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    if not instructor:
        cmd.append("--LabApp.default_url=/lab/tree/lessons")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        cmd.append("--allow-root")
    return cmd + list(extra), env


def main(root, instructor: bool = False, threads: int | None = None, extra=(), print_only: bool = False) -> int:
    """Start JupyterLab (replaces this process) or, with ``print_only``, print what would run."""
    import subprocess

    root = Path(root).resolve()
    if not (root / "jupyter" / "student").is_dir():
        print(f"{root} has no jupyter/ settings folder: is it the course repository?", file=sys.stderr)
        return 1
    cmd, env = lab_command(root, instructor=instructor, threads=threads, extra=extra)
    changed = {k: env[k] for k in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH", *THREAD_VARIABLES)
               if env.get(k) != os.environ.get(k)}
    shown = " ".join(f"{k}={v}" for k, v in changed.items()) + " " + " ".join(cmd)
    if print_only:
        print(shown.strip())
        return 0
    if instructor:  # nbgrader sets the exchange's permissions itself when it releases
        Path(env.get("NOISYLABELS_EXCHANGE", root / "exchange")).mkdir(parents=True, exist_ok=True)
    print(f"starting JupyterLab for {'instructors' if instructor else 'students'} at {root}"
          + (f", {threads} thread a kernel" if threads else ""), file=sys.stderr, flush=True)
    os.chdir(root)
    if os.name == "posix":
        os.execve(cmd[0], cmd, env)  # JupyterLab takes this process: Ctrl+C, signals, exit code
    return subprocess.call(cmd, env=env)
