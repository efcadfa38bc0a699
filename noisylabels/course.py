"""Course housekeeping: finding the notebooks, keeping them clean, generating the
student assignments with nbgrader and checking them.

Used by the ``noisylabels`` command (``build``, ``clean``, ``assignments``) and by CI.
"""

from __future__ import annotations

import contextlib
import filecmp
import functools
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

__all__ = [
    "find_root",
    "lesson_notebooks",
    "solution_notebooks",
    "all_notebooks",
    "assignment_names",
    "clean_notebook",
    "notebook_problems",
    "generate_assignments",
    "new_gradebook",
    "assignment_drift",
    "nbgrader_validate",
]

# Cell metadata worth keeping; everything else (collapsed, scrolled, execution
# timings, editor state) is noise in a diff.
_KEEP_CELL_METADATA = ("nbgrader", "tags", "deletable", "editable", "slideshow")
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def find_root(start=None) -> Path:
    """The course repository: the nearest folder at or above ``start`` holding
    ``nbgrader_config.py`` (``$NOISYLABELS_ROOT`` wins)."""
    if os.environ.get("NOISYLABELS_ROOT"):
        return Path(os.environ["NOISYLABELS_ROOT"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").exists():
            return folder
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "nbgrader_config.py").exists():
        return package_parent
    raise FileNotFoundError(
        f"no course repository (a folder with nbgrader_config.py) at or above {here}"
    )


def lesson_notebooks(root) -> list[Path]:
    """``lessons/*.ipynb`` in their numeric order."""
    return sorted(Path(root, "lessons").glob("*.ipynb"))


def assignment_names(root) -> list[str]:
    """Names of the source assignments: folders of ``solutions/`` that hold a notebook."""
    solutions = Path(root, "solutions")
    if not solutions.is_dir():
        return []
    return sorted(p.name for p in solutions.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def solution_notebooks(root) -> list[Path]:
    """The source notebooks of every assignment, assignment by assignment."""
    return [nb for name in assignment_names(root) for nb in sorted(Path(root, "solutions", name).glob("*.ipynb"))]


def all_notebooks(root) -> list[Path]:
    """Lessons first, then the assignments' source notebooks: the order of ``noisylabels build``."""
    return lesson_notebooks(root) + solution_notebooks(root)


# ----------------------------------------------------------------------------- clean notebooks
def _clean(nb) -> bool:
    """Strip outputs and noisy metadata from ``nb`` in place; True if anything changed."""
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in _KEEP_CELL_METADATA}
    language = nb.metadata.get("language_info", {}).get("name", "python")
    nb.metadata = {
        "kernelspec": _KERNELSPEC,
        "language_info": {"name": language},
    }
    return nbformat.writes(nb) != before


def clean_notebook(path) -> bool:
    """Remove outputs, execution counts and editor metadata from the notebook at ``path``.

    Returns True if the file changed. nbgrader cell metadata and tags are kept.
    """
    nb = nbformat.read(path, as_version=4)
    if _clean(nb):
        nbformat.write(nb, path)
        return True
    return False


def notebook_problems(path) -> list[str]:
    """What is wrong with a committed notebook: outputs, execution counts, editor metadata."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            problems.append(f"cell {i} has an execution count")
        extra = set(cell.metadata) - set(_KEEP_CELL_METADATA)
        if extra:
            problems.append(f"cell {i} has metadata {sorted(extra)}")
    extra = set(nb.metadata) - {"kernelspec", "language_info"}
    if extra:
        problems.append(f"notebook metadata {sorted(extra)}")
    return problems


# ----------------------------------------------------------------------------- nbgrader
def tool_env(env=None) -> dict:
    """``env`` (default: this process's) with this interpreter's ``bin`` folder first on PATH,
    so that the tools nbgrader calls (``alembic``, ``jupyter``) and ``python3`` are the course
    environment's even when it is not activated."""
    env = dict(os.environ if env is None else env)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _nbgrader(root, *args, env=None, timeout=None) -> subprocess.CompletedProcess:
    """Run the real ``nbgrader`` command in ``root``."""
    env = tool_env(env)
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
    )


@functools.lru_cache(maxsize=1)
def _gradebook_schema_head() -> str:
    """The head revision of nbgrader's gradebook migrations, read once a process."""
    from alembic.script import ScriptDirectory

    (scripts,) = importlib.util.find_spec("nbgrader").submodule_search_locations
    return ScriptDirectory(os.path.join(scripts, "alembic")).get_current_head()


def new_gradebook(path) -> str:
    """An empty nbgrader gradebook file at ``path`` at nbgrader's current schema; returns its URL.

    nbgrader stamps a new gradebook by starting the ``alembic`` command (1.6 s a call); this
    reads the same head revision from nbgrader's migration scripts in this process. Used for
    the throw-away gradebooks of ``generate_assignments`` and of a class autograde's students."""
    if Path(path).exists():
        raise FileExistsError(f"{path} exists: a new gradebook needs a path with no file")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (_gradebook_schema_head(),))
    return f"sqlite:///{path}"


def generate_assignments(root=None, release_dir=None, names=None, register: bool = False) -> list[Path]:
    """Generate the student version of every assignment with ``nbgrader generate_assignment``.

    Writes ``assignments/<name>/`` (or ``release_dir/<name>/``), replacing what was there,
    and cleans the generated notebooks. A throw-away gradebook is used, so this never
    touches the instructor's ``gradebook.db``, unless ``register``: then the assignments
    (their grade cells, points and hidden tests) are recorded in the course's gradebook
    (``nbgrader_config.py``'s ``db_url``), which ``nbgrader autograde`` needs. Assignment-specific steps run inside
    nbgrader, from ``nbgrader_config.py`` (homework 2's student stub, say), so plain
    ``nbgrader generate_assignment`` gives the same result. Returns the generated folders.
    """
    root = Path(root or find_root())
    release_dir = Path(release_dir or root / "assignments").resolve()
    names = names or assignment_names(root)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        db = None if register else new_gradebook(Path(tmp, "gradebook.db"))
        for name in names:
            result = _nbgrader(
                root, "generate_assignment", name, "--force",
                f"--CourseDirectory.release_directory={release_dir}",
                *([] if register else [f"--CourseDirectory.db_url={db}"]),
            )
            target = release_dir / name
            if result.returncode != 0 or not target.is_dir():
                raise RuntimeError(
                    f"nbgrader generate_assignment {name} failed:\n{result.stdout}\n{result.stderr}"
                )
            for nb in target.glob("*.ipynb"):
                clean_notebook(nb)
            out.append(target)
    return out


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
            and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


def assignment_drift(root=None) -> list[str]:
    """Differences between ``assignments/`` and what nbgrader generates from ``solutions/`` now.

    Returns a list of human-readable differences; empty means no drift.
    """
    root = Path(root or find_root())
    committed = root / "assignments"
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        generate_assignments(root, release_dir=tmp)
        fresh_names = sorted(p.name for p in Path(tmp).iterdir() if p.is_dir())
        committed_names = sorted(p.name for p in committed.iterdir() if p.is_dir()) if committed.is_dir() else []
        for name in sorted(set(fresh_names) | set(committed_names)):
            if name not in committed_names:
                problems.append(f"assignments/{name} is missing (run `noisylabels assignments`)")
                continue
            if name not in fresh_names:
                problems.append(f"assignments/{name} has no source in solutions/")
                continue
            a, b = Path(tmp, name), committed / name
            generated, committed_files = _tree(a), _tree(b)
            for path in sorted(generated - committed_files):
                problems.append(f"assignments/{name}/{path} is missing")
            for path in sorted(committed_files - generated):
                problems.append(f"assignments/{name}/{path} is not generated from solutions/")
            for path in sorted(generated & committed_files):
                if not filecmp.cmp(a / path, b / path, shallow=False):
                    problems.append(f"assignments/{name}/{path} differs from the generated version")
    return problems


_VALIDATE_FAILED = re.compile(r"VALIDATION FAILED ON (\d+) CELL", re.I)


def nbgrader_validate(notebook, invert: bool = False, env=None, timeout=None) -> tuple[bool, str]:
    """Run ``nbgrader validate [--invert] NOTEBOOK``; return (as expected?, its output).

    Without ``invert``: True when every grade cell passes. With ``invert`` (for released
    stubs): True when no grade cell passes.
    """
    notebook = Path(notebook).resolve()
    args = ["validate", str(notebook), "--Execute.timeout=900"] + (["--invert"] if invert else [])
    try:
        cwd = find_root(notebook.parent)
    except FileNotFoundError:
        cwd = notebook.parent
    result = _nbgrader(cwd, *args, env=env, timeout=timeout)
    text = result.stdout + result.stderr
    if invert:
        ok = "Success! The notebook does not pass any tests." in text
    else:
        ok = "Success! Your notebook passes all the tests." in text and not _VALIDATE_FAILED.search(text)
    return ok and result.returncode == 0, text
