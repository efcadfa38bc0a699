"""The course environment as other unix accounts see it, for tests that run as them.

The test virtual environment (``.venv``) may link to an interpreter in root's home (pyenv),
which other accounts cannot read. Tests that act as a student, a grader or an instructor
account use :func:`course_env`: a virtual environment made from the system's
``/usr/bin/python3`` (readable by every account) under ``/opt``, with the course installed
in editable mode from this checkout, exactly as ``deploy/`` installs it for a class. It is
built once (a few minutes; pip's cache makes later builds quicker), reused while the
checkout and ``pyproject.toml`` are unchanged, and updated in place when they change.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
ENV_ROOT = Path(os.environ.get("NOISYLABELS_TEST_SYSTEM_ENV", "/opt/noisylabels-test-env"))


def _stamp() -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    digest.update(str(REPO).encode())
    return digest.hexdigest()


def system_env_problem() -> str | None:
    """Why a system-wide environment cannot be made here, or ``None``."""
    if os.geteuid() != 0:
        return "tests that act as other unix accounts run as root (they create the accounts)"
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    if shutil.which("useradd") is None:
        return "useradd is missing"
    unreadable = [str(p) for p in [REPO, *REPO.parents] if p != Path("/") and not os.stat(p).st_mode & 0o005]
    if unreadable:
        return f"the checkout is not readable by other accounts ({unreadable[0]} is closed)"
    return None


def course_env() -> Path:
    """The ``bin/`` folder of a system-wide course environment (built on first use)."""
    ENV_ROOT.parent.mkdir(parents=True, exist_ok=True)
    lock_path = ENV_ROOT.with_name(ENV_ROOT.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = ENV_ROOT / "noisylabels-stamp"
        if not (stamp_file.exists() and stamp_file.read_text() == _stamp()):
            # an existing environment is updated in place (other tests may be running from it)
            old = os.umask(0o022)
            try:
                if not (ENV_ROOT / "bin" / "pip").exists():
                    shutil.rmtree(ENV_ROOT, ignore_errors=True)
                    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(ENV_ROOT)], check=True)
                subprocess.run([str(ENV_ROOT / "bin" / "pip"), "install", "--quiet", "-e", f"{REPO}[dev]"],
                               check=True, cwd=REPO)
                stamp_file.write_text(_stamp())
            finally:
                os.umask(old)
    return ENV_ROOT / "bin"
