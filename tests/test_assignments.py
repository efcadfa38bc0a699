"""The nbgrader gates: no drift between solutions/ and assignments/, sources validate,
student versions do not (stubs fail). Uses the real nbgrader commands."""

import os
import shutil

import pytest

from noisylabels.course import assignment_drift, assignment_names, find_root, nbgrader_validate

ROOT = find_root()
NAMES = assignment_names(ROOT)


def test_every_source_assignment_has_a_generated_student_version():
    released = ROOT / "assignments"
    generated = sorted(p.name for p in released.iterdir() if p.is_dir()) if released.is_dir() else []
    assert generated == NAMES, "run `noisylabels assignments` and commit assignments/"


@pytest.mark.slow
def test_assignments_are_exactly_what_nbgrader_generates_from_solutions():
    assert assignment_drift(ROOT) == [], "run `noisylabels assignments` and commit the result"


def _quick_env():
    return dict(os.environ, NOISYLABELS_SIZE="quick")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_source_assignment_passes_nbgrader_validate(name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(ROOT / "solutions" / name, folder)
    for notebook in sorted(folder.glob("*.ipynb")):
        ok, output = nbgrader_validate(notebook, env=_quick_env(), timeout=1500)
        assert ok, output[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_released_stubs_fail_nbgrader_validate_invert(name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(ROOT / "assignments" / name, folder)
    for notebook in sorted(folder.glob("*.ipynb")):
        ok, output = nbgrader_validate(notebook, invert=True, env=_quick_env(), timeout=1500)
        assert ok, output[-3000:]
