"""The course library's *grading edition*: reference implementations withheld while a homework is graded.

A homework asks students to write functions the course library already has (homework 1:
``nl.corrupt_labels``; homework 3: the losses of :mod:`noisylabels.losses`; homework 4:
:mod:`noisylabels.reweight`). In their own JupyterLab the whole library is there (they may
compare with it while they work); while ``nbgrader autograde`` runs their notebook, those
functions and classes must not be, or a one-line call to the library earns the points.

Patching the module inside the kernel would not do: the student's code runs first and can
``importlib.reload`` the module, ``exec`` its source file, unmarshal its ``.pyc``, or keep
a reference from an earlier cell. So the original code is simply **not in the sandbox**:

- each grader module declares, with :func:`withhold`, which top-level functions and classes
  of which library modules its homework's students must write (``BLOCKED`` in
  ``autograder/nbgrader_plugins/hwNN_grading.py``);
- before a kernel starts, :func:`edition_source` rewrites each such module file: every
  withheld definition (with its decorators) is replaced, in place, by a stub of the same
  name that raises :class:`NotAvailableWhileGraded` ("noisylabels.corrupt_labels is not
  available while homework 1 is graded: implement it yourself"); the rest of the file is
  unchanged, so everything else of the library works as before;
- :func:`edition_mounts` gives the bubblewrap arguments that bind each edition read-only
  **over the module's own path** and a fresh empty ``tmpfs`` over the package's
  ``__pycache__`` (the compiled originals are not there either). Reloading, reading the file,
  ``exec``-ing it or importing it under another name all find the edition.

The graders (:mod:`autograder.nbgrader_plugins.outside_kernel`) run in the nbgrader process, outside the
sandbox, and keep the real library for their reference values.

If a withheld name is missing from its module (renamed, say), building the edition fails
with :class:`EditionError` and the submission is not graded: never graded with the library
in reach, never a student's 0. With ``NOISYLABELS_UNSAFE_SANDBOX=1`` (no sandbox) nothing
can be withheld and autograde says so in its log.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Withheld", "EditionError", "withhold", "withheld", "module_file", "edition_source",
           "edition_mounts", "ERROR_NAME"]

#: The name of the exception a withheld function raises in the grading kernel.
ERROR_NAME = "NotAvailableWhileGraded"


class EditionError(RuntimeError):
    """A grading edition cannot be built (a withheld name is not in its module)."""


@dataclass(frozen=True)
class Withheld:
    """What one assignment withholds: ``{module: (name, ...)}``, and how to name the homework."""

    assignment_id: str
    homework: str                 #: as the message says it, e.g. "homework 1"
    names: dict                   #: {"noisylabels.noise": ("corrupt_labels", ...)}


_REGISTRY: dict[str, Withheld] = {}


def withhold(assignment_id: str, homework: str, names: dict) -> Withheld:
    """Declare the library's functions and classes that ``assignment_id``'s students write themselves.

    ``names`` maps a module (``"noisylabels.noise"``) to the top-level names withheld from it
    while the assignment is autograded. Returns the declaration (grader modules keep it as ``BLOCKED``).
    """
    entry = Withheld(assignment_id, homework, {m: tuple(n) for m, n in names.items()})
    old = _REGISTRY.get(assignment_id)
    if old is not None and old != entry:
        raise ValueError(f"{assignment_id} already withholds {old.names}")
    _REGISTRY[assignment_id] = entry
    return entry


def withheld(assignment_id: str | None) -> Withheld | None:
    """What ``assignment_id`` withholds (``None``: nothing)."""
    return _REGISTRY.get(assignment_id) if assignment_id else None


def module_file(module: str) -> Path:
    """The source file of ``module`` as the grader's Python finds it (resolved)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise EditionError(f"no Python source file for {module}")
    return Path(spec.origin).resolve()


def _public_name(module: str, name: str) -> str:
    """``noisylabels.corrupt_labels`` for what the package exports, else ``noisylabels.reweight._helper``."""
    package = module.split(".")[0]
    try:
        pkg, mod = importlib.import_module(package), importlib.import_module(module)
        if getattr(pkg, name, None) is getattr(mod, name, object()):
            return f"{package}.{name}"
    except Exception:  # noqa: BLE001 - the message only
        pass
    return f"{module}.{name}"


def _stub(node, message: str) -> str:
    doc = f'    """Withheld while this homework is graded: {message}"""\n'
    if isinstance(node, ast.ClassDef):
        return (f"class {node.name}:\n{doc}\n"
                f"    def __init__(self, *args, **kwargs):\n"
                f"        raise {ERROR_NAME}({message!r})\n")
    return (f"def {node.name}(*args, **kwargs):\n{doc}"
            f"    raise {ERROR_NAME}({message!r})\n")


def edition_source(source: str, module: str, names, homework: str) -> str:
    """``source`` (of ``module``) with the top-level definitions ``names`` replaced by stubs that raise.

    Everything else stays as it was, line for line. Raises :class:`EditionError` when a name
    is not a top-level function or class of the module, or when a definition that stays
    subclasses a withheld class (it would break).
    """
    tree = ast.parse(source)
    defs = {node.name: node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    missing = [name for name in names if name not in defs]
    if missing:
        raise EditionError(f"{module} has no top-level {', '.join(missing)} to withhold (renamed? "
                           f"update BLOCKED in the homework's autograder/nbgrader_plugins/hwNN_grading.py)")
    for node in defs.values():
        if isinstance(node, ast.ClassDef) and node.name not in names:
            bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
            if bases & set(names):
                raise EditionError(f"{module}.{node.name} subclasses withheld {sorted(bases & set(names))}")
    lines = source.splitlines(keepends=True)
    nodes = sorted((defs[name] for name in set(names)), key=lambda n: n.lineno, reverse=True)
    for node in nodes:
        start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        message = (f"{_public_name(module, node.name)} is not available while {homework} is graded: "
                   f"implement it yourself")
        lines[start:node.end_lineno] = [_stub(node, message)]
    text = "".join(lines)
    if not text.endswith("\n"):
        text += "\n"
    text += (
        "\n\n# ---- grading edition (autograder/nbgrader_plugins/grading_edition.py): the definitions above that raise\n"
        f"# {ERROR_NAME} are withheld while {homework} is graded.\n"
        f"class {ERROR_NAME}(RuntimeError):\n"
        f'    """A library function or class that the homework being graded asks you to write yourself."""\n'
    )
    compile(text, f"<grading edition of {module}>", "exec")
    return text


def edition_mounts(assignment_id: str | None, folder) -> list:
    """bubblewrap arguments that put ``assignment_id``'s grading editions in place of the originals.

    Writes the editions into ``folder`` (the grader's, never mounted itself) and returns
    ``--ro-bind EDITION ORIGINAL`` for every module and ``--tmpfs`` over each package's
    ``__pycache__``; to be given after the runtime's mounts. ``[]`` when nothing is withheld.
    """
    entry = withheld(assignment_id)
    if entry is None:
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    args, caches = [], set()
    for module, names in entry.names.items():
        path = module_file(module)
        edition = folder / f"{module}.py"
        edition.write_text(edition_source(path.read_text(encoding="utf-8"), module, names, entry.homework),
                           encoding="utf-8")
        os.chmod(edition, 0o444)
        args += ["--ro-bind", str(edition), str(path)]
        # the compiled originals: the package's __pycache__ (and a PYTHONPYCACHEPREFIX folder)
        for cache in {path.parent / "__pycache__", Path(importlib.util.cache_from_source(str(path))).parent}:
            if cache.is_dir():
                caches.add(str(cache))
    for cache in sorted(caches):
        args += ["--tmpfs", cache]
    return args
