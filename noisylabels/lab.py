"""``noisylabels lab``: start JupyterLab at the course root, set up for students or instructors.

Students (``noisylabels lab``): JupyterLab opens on ``lessons/`` with the whole course
(``lessons/``, ``assignments/``) reachable; nbgrader's instructor plugins (Nbgrader menu,
Formgrader, Create Assignment, Course List, Assignment List) and their server extensions
are disabled for this server only, through the course's ``jupyter/student`` settings
folder (nbgrader's documented per-environment switch is ``jupyter labextension disable``
and ``jupyter server extension disable``; a settings folder on ``JUPYTER_CONFIG_PATH`` does
the same without changing the environment the instructor uses). Validate stays.

Instructors (``noisylabels lab --instructor``): every nbgrader tool and the formgrader's
MathJax served locally. Its exchange is the one nbgrader's command-line tools use
(:func:`exchange_root`): the ``Exchange.root`` of an ``nbgrader_config`` file Jupyter reads
for this account (on a class server, the system one ``deploy/install.sh`` writes), else
``$NOISYLABELS_EXCHANGE``, else the course's own ``exchange/`` (a trial on a laptop, created
here). One exchange, so formgrader shows a released assignment as released, with Collect.

Both: the server sends the course's Content-Security-Policy (``jupyter/common``).

On a machine with few cores each kernel runs one PyTorch/BLAS thread (``--threads``):
on the 2-core course machine, shared with other work, a LeNet epoch took 10x longer with
two threads fighting a busy process than with one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["default_threads", "exchange_root", "lab_command", "main", "nbgrader_config_files", "nbgrader_setting"]

SMALL_MACHINE_CORES = 4
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_threads(cpu_count: int | None = None) -> int | None:
    """One thread a kernel on a machine with at most 4 cores; otherwise leave the libraries' default."""
    cpu_count = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return 1 if cpu_count <= SMALL_MACHINE_CORES else None


def _prepend(env: dict, name: str, folder: Path) -> None:
    rest = env.get(name)
    env[name] = str(folder) + (os.pathsep + rest if rest else "")


def nbgrader_config_files(env: dict | None = None, skip=()) -> list[Path]:
    """The ``nbgrader_config`` files nbgrader reads for this account, highest priority first.

    The folders are Jupyter's configuration path (``$JUPYTER_CONFIG_PATH``, the user's
    ``~/.jupyter``, the environment's ``etc/jupyter``, ``/usr/local/etc/jupyter``,
    ``/etc/jupyter``); folders inside one of ``skip`` are left out.
    """
    from jupyter_core.paths import (
        ENV_CONFIG_PATH, SYSTEM_CONFIG_PATH, jupyter_config_dir, prefer_environment_over_user,
    )

    env = os.environ if env is None else env
    folders = [f for f in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if f]
    user, environment = [jupyter_config_dir()], [p for p in ENV_CONFIG_PATH if p not in SYSTEM_CONFIG_PATH]
    folders += environment + user if prefer_environment_over_user() else user + environment
    folders += SYSTEM_CONFIG_PATH
    skip = [Path(s).resolve() for s in skip]
    found = []
    for folder in folders:
        folder = Path(folder).expanduser().resolve()
        if any(folder == s or s in folder.parents for s in skip):
            continue
        for name in ("nbgrader_config.py", "nbgrader_config.json"):
            if (folder / name).is_file() and folder / name not in found:
                found.append(folder / name)
    return found


def nbgrader_setting(path, section: str, name: str):
    """The value a Jupyter configuration file gives ``section.name``, or ``None``."""
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    path = Path(path)
    loader = (PyFileConfigLoader if path.suffix == ".py" else JSONFileConfigLoader)(path.name, str(path.parent))
    config = loader.load_config()
    return config[section][name] if section in config and name in config[section] else None


def exchange_root(root, env: dict | None = None) -> tuple[Path, str]:
    """The exchange folder for the course at ``root`` and where that choice comes from.

    The ``Exchange.root`` of the highest-priority ``nbgrader_config`` file nbgrader reads for
    this account (the course's own ``jupyter/`` settings aside), as ``nbgrader release_assignment``
    and ``collect`` use it; else ``$NOISYLABELS_EXCHANGE``; else ``root/exchange``.
    """
    env = os.environ if env is None else env
    root = Path(root).resolve()
    for path in nbgrader_config_files(env, skip=[root / "jupyter"]):
        value = nbgrader_setting(path, "Exchange", "root")
        if value:
            return Path(value), str(path)
    if env.get("NOISYLABELS_EXCHANGE"):
        return Path(env["NOISYLABELS_EXCHANGE"]), "NOISYLABELS_EXCHANGE"
    return root / "exchange", "the course's own exchange/ (no nbgrader_config sets Exchange.root)"


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
    if instructor:  # read by jupyter/instructor/nbgrader_config.py: the command-line tools' exchange
        env["NOISYLABELS_EXCHANGE"] = str(exchange_root(root, env)[0])
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
    changed = {k: env[k] for k in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH", "NOISYLABELS_EXCHANGE", *THREAD_VARIABLES)
               if env.get(k) != os.environ.get(k)}
    shown = " ".join(f"{k}={v}" for k, v in changed.items()) + " " + " ".join(cmd)
    if print_only:
        print(shown.strip())
        return 0
    if instructor:
        exchange, source = exchange_root(root)
        if source.endswith(".py") or source.endswith(".json"):  # a class server's: made by root, never here
            if not exchange.is_dir():
                print(f"warning: the exchange {exchange} (set in {source}) does not exist: "
                      "create it with deploy/install.sh", file=sys.stderr)
        else:  # a trial on one account: nbgrader sets the exchange's permissions itself when it releases
            exchange.mkdir(parents=True, exist_ok=True)
        print(f"exchange: {exchange} (from {source})", file=sys.stderr)
    print(f"starting JupyterLab for {'instructors' if instructor else 'students'} at {root}"
          + (f", {threads} thread a kernel" if threads else ""), file=sys.stderr, flush=True)
    os.chdir(root)
    if os.name == "posix":
        os.execve(cmd[0], cmd, env)  # JupyterLab takes this process: Ctrl+C, signals, exit code
    return subprocess.call(cmd, env=env)
