"""A real ``noisylabels lab`` server and headless Chromium for the browser tests
(tests/test_browser.py, tests/test_browser_xss.py).

:class:`Lab` starts ``noisylabels lab`` on a free localhost port with the token
:data:`TOKEN`; :func:`chromium` finds Debian's Chromium and Playwright, or skips (locally) /
fails (CI) saying what is missing; :func:`browser` is the module-scoped Chromium fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

TOKEN = "noisylabels-browser-test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium() -> str:
    """The system Chromium and Playwright, or a skip (locally) / failure (CI) that says what is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("pip package playwright (pip install -e '.[dev]')")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing.append("a Chromium browser (apt-get install -y chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if in_ci():
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running ``noisylabels lab`` server."""

    def __init__(self, course: Path, home: Path, instructor: bool = False):
        self.course, self.home, self.port = course, home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "lab-settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True, exist_ok=True)
        # render every cell, so that the test can read cells below the fold
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        env = dict(os.environ, NOISYLABELS_SIZE="quick", JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                   NOISYLABELS_EXCHANGE=str(home / "exchange"))
        env.pop("NOISYLABELS_ROOT", None)
        cmd = [sys.executable, "-m", "noisylabels.cli", "--root", str(course), "lab",
               *(["--instructor"] if instructor else []),
               "--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", "--ServerApp.port_retries=0"]
        self.log = open(home / "jupyterlab.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {(home / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("JupyterLab did not answer within 120 s")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()
