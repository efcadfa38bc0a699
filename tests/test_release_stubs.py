"""Release stubs fail closed: no reference script reaches the student release."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.nbgrader_plugins.release_stubs import ReleaseStubError, write_release_stubs
from noisylabels import evil_twins as et
from noisylabels.course import tool_env

ROOT = Path(__file__).resolve().parent.parent
HW02 = "hw02_evil_twins"


def _course(tmp_path, stub_spec):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    config = (ROOT / "nbgrader_config.py").read_text()
    config, n = re.subn(r'"hw02\.py": "[^"]+"', f'"hw02.py": "{stub_spec}"', config)
    assert n == 1
    (course / "nbgrader_config.py").write_text(config)
    shutil.copytree(ROOT / "solutions" / HW02, course / "solutions" / HW02,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = dict(os.environ)
    env = tool_env(env)  # this interpreter's bin folder first on PATH
    env.pop("NOISYLABELS_GRADEBOOK", None)
    return course, env


def _generate(course, env):
    return subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", HW02, "--force"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_generate_assignment_releases_the_declared_stub_not_the_reference(tmp_path):
    course, env = _course(tmp_path, "noisylabels.evil_twins:STUDENT_STUB")
    run = _generate(course, env)
    assert run.returncode == 0, run.stderr[-3000:]
    released = course / "assignments" / HW02 / "hw02.py"
    assert released.read_text() == et.STUDENT_STUB
    assert released.read_text() != (ROOT / "solutions" / HW02 / "hw02.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["noisylabels.evil_twins:NO_SUCH_STUB", "no_such_module:STUB", "release/missing.py"])
def test_generate_assignment_fails_and_releases_no_reference_when_the_stub_cannot_be_written(tmp_path, spec):
    course, env = _course(tmp_path, spec)
    run = _generate(course, env)
    assert run.returncode != 0
    assert "ReleaseStubError" in run.stdout + run.stderr
    assert not (course / "assignments" / HW02 / "hw02.py").exists()
    reference = (ROOT / "solutions" / HW02 / "hw02.py").read_text()
    for path in (course / "assignments").rglob("*") if (course / "assignments").exists() else []:
        if path.is_file():
            assert path.read_bytes() != reference.encode(), path


def test_write_release_stubs_deletes_the_reference_copy_when_it_fails(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "hw02.py").write_text("the reference solution")
    with pytest.raises(ReleaseStubError):
        write_release_stubs(release, {"hw02.py": "no_such_module:STUB"}, tmp_path)
    assert not (release / "hw02.py").exists()
    with pytest.raises(ReleaseStubError):
        write_release_stubs(tmp_path / "missing", {"hw02.py": "noisylabels.evil_twins:STUDENT_STUB"}, tmp_path)
    with pytest.raises(ReleaseStubError):
        write_release_stubs(release, {"../outside.py": "noisylabels.evil_twins:STUDENT_STUB"}, tmp_path)


def test_nbgrader_config_does_not_swallow_import_errors():
    config = (ROOT / "nbgrader_config.py").read_text()
    assert "except ImportError" not in config and "except Exception" not in config
