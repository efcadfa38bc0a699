"""Release stubs: files that replace an assignment's reference scripts in the student release.

nbgrader copies every non-notebook file of ``solutions/<assignment>/`` verbatim into the
release, so a reference solution kept there as a script (homework 2's ``hw02.py``) would
reach students. ``nbgrader_config.py`` declares, per assignment, which released files
are replaced by which stub::

    c.ReleaseStubs.stubs = {
        "hw02_evil_twins": {"hw02.py": "noisylabels.evil_twins:STUDENT_STUB"},
        # "hwNN_name": {"script.py": "solutions/hwNN_name/release/script.py"},
    }

A stub is either ``package.module:ATTRIBUTE`` (a string in the course library) or a file
path relative to the course root (keep such files out of the release with
``CourseDirectory.ignore``, e.g. a ``release`` folder). :class:`ReleaseStubs` is a
``GenerateAssignment`` preprocessor: it runs inside ``nbgrader generate_assignment``
(so ``noisylabels assignments`` and plain nbgrader give the same release), after nbgrader
has copied the assignment's files. It **fails closed**: it deletes the released copies
of the reference files first, then writes the stubs and reads them back; any failure
(stub not importable or missing, release folder missing, write error) raises
:class:`ReleaseStubError`, which makes ``generate_assignment`` exit non-zero and remove
the release it was writing. (nbgrader's ``post_convert_hook`` cannot do this: nbgrader
logs a failing hook and carries on.)
"""

from __future__ import annotations

import importlib
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict

__all__ = ["ReleaseStubs", "ReleaseStubError", "stub_text", "write_release_stubs"]


class ReleaseStubError(RuntimeError):
    """A declared stub could not be written: the release must not go out."""


def stub_text(spec: str, course_root) -> str:
    """The text of the stub ``spec``: ``module:ATTRIBUTE`` or a path relative to ``course_root``."""
    if ":" in spec and not Path(course_root, spec).exists():
        module, attribute = spec.split(":", 1)
        try:
            text = getattr(importlib.import_module(module), attribute)
        except Exception as exc:  # ImportError, AttributeError, anything the import raises
            raise ReleaseStubError(f"stub {spec!r} cannot be loaded: {exc!r}") from exc
    else:
        path = Path(course_root, spec)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ReleaseStubError(f"stub file {path} cannot be read: {exc}") from exc
    if not isinstance(text, str) or not text.strip():
        raise ReleaseStubError(f"stub {spec!r} is empty or not text")
    return text


def write_release_stubs(release_dir, stubs: dict, course_root) -> list[Path]:
    """Replace ``release_dir/<target>`` by each stub of ``stubs`` (``{target: spec}``).

    The released copies are deleted before anything else, so a failure leaves no
    reference file behind. Raises :class:`ReleaseStubError` on any failure.
    """
    release_dir = Path(release_dir)
    targets = {}
    for target in stubs:
        path = (release_dir / target).resolve()
        if release_dir.resolve() not in path.parents:
            raise ReleaseStubError(f"stub target {target!r} is outside the release folder")
        targets[target] = path
    try:
        for path in targets.values():
            path.unlink(missing_ok=True)
        if not release_dir.is_dir():
            raise ReleaseStubError(f"release folder {release_dir} does not exist")
        written = []
        for target, spec in stubs.items():
            text = stub_text(spec, course_root)
            targets[target].parent.mkdir(parents=True, exist_ok=True)
            targets[target].write_text(text)
            if targets[target].read_text() != text:
                raise ReleaseStubError(f"{targets[target]} does not hold the stub after writing it")
            written.append(targets[target])
        return written
    except BaseException as exc:
        for path in targets.values():  # failing: make sure no reference copy stays
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        if isinstance(exc, ReleaseStubError) or not isinstance(exc, Exception):
            raise
        raise ReleaseStubError(f"writing the release stubs into {release_dir} failed: {exc!r}") from exc


class ReleaseStubs(NbGraderPreprocessor):
    """``GenerateAssignment`` preprocessor that writes the declared stubs into the release."""

    stubs = Dict(
        {}, help="{assignment: {released file: stub}}; a stub is 'module:ATTRIBUTE' or a path "
                 "relative to the course root.",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        if assignment in self.stubs:
            coursedir = CourseDirectory(config=self.config)
            release_dir = Path(coursedir.format_path(coursedir.release_directory, ".", assignment))
            written = write_release_stubs(release_dir, self.stubs[assignment], coursedir.root)
            self.log.info("Released stubs in place of the reference files: %s", ", ".join(map(str, written)))
        return nb, resources
