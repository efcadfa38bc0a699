"""What a student hands in, read safely: regular files only, and their text made safe to show.

Used by both grading paths before they read anything of a submission: the stand-alone
grader (:mod:`autograder.hw02.grade`) for each ``<student>/`` folder, and nbgrader's
autograde (:mod:`autograder.nbgrader_plugins.submission_checks`) for each
``submitted/<student>/<assignment>/`` folder, before nbgrader copies anything.

A submission folder kept as a tar, a git checkout or ``cp -a`` can hold more than files.
:func:`check_submission` walks the folder without following links (``lstat``) and names,
one sentence each, what makes it unsafe for a grader running as root to read: a symbolic
link (it could point at the key, the gradebook or a root-only file), a FIFO or socket (a
read blocks for ever), a device (``/dev/zero`` never ends), a folder where a file is
expected, a hard link (``st_nlink > 1``: the same file may sit outside the submission)
and a file over :data:`MAX_FILE_BYTES` (a sparse file of terabytes costs nothing to
make). :func:`read_regular_file` reads one file with ``O_NOFOLLOW | O_NONBLOCK`` and
checks with ``fstat`` that what it opened is that regular file, so a file swapped after
the check is refused too.

:func:`escape_control` makes a student's text (output, file names) safe for a log read
in a terminal (CSV cells: :mod:`autograder.hw02.csv_safe`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_ENTRIES",
    "SubmissionRefused",
    "check_file",
    "check_submission",
    "read_regular_file",
    "escape_control",
]

#: Largest file of a submission (nbgrader's own ``max_file_size`` for collected files is
#: 100,000 KB); a notebook with its images is a few MB.
MAX_FILE_BYTES = 100 * 1024 * 1024
#: Most files and folders in one submission folder.
MAX_ENTRIES = 10_000


class SubmissionRefused(ValueError):
    """A submission that is not regular files only; ``problems`` lists why, one sentence each."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _kind_problem(name: str, st: os.stat_result, max_bytes: int) -> str | None:
    """Why the entry ``name`` with ``lstat`` result ``st`` cannot be graded as a file, or ``None``."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return f"{name} is a symbolic link: submit the file itself"
    if stat.S_ISFIFO(mode):
        return f"{name} is a named pipe (FIFO), not a file: submit the file itself"
    if stat.S_ISSOCK(mode):
        return f"{name} is a socket, not a file: submit the file itself"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"{name} is a device, not a file: submit the file itself"
    if not stat.S_ISREG(mode):
        return f"{name} is not a regular file: submit the file itself"
    if st.st_nlink > 1:
        return (f"{name} is a hard link ({st.st_nlink} names for the same file, which may lie "
                f"outside the submission): submit a copy of the file")
    if st.st_size > max_bytes:
        return f"{name} is {st.st_size:,} bytes; the limit is {max_bytes:,} bytes"
    return None


def check_file(path, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why the file ``path`` (judged by ``lstat``, never followed) cannot be read as a submitted
    file, or ``None``. Raises :class:`FileNotFoundError` when there is nothing there."""
    path = Path(path)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        return f"{path.name} is a folder, not a file: submit the file itself"
    return _kind_problem(path.name, st, max_bytes)


def check_submission(folder, *, files=(), max_file_bytes: int = MAX_FILE_BYTES,
                     max_entries: int = MAX_ENTRIES) -> list:
    """Why ``folder`` is not a submission of regular files only: a list of sentences, ``[]`` if none.

    Nothing is followed or opened: every entry is judged by ``lstat``. ``folder`` itself
    must be a real folder; subfolders are walked; ``files`` are names (relative to
    ``folder``) that must be regular files when present (``hw02.py`` as a folder is refused;
    a missing one is left to the grader, which says so).
    """
    folder = Path(folder)
    try:
        st = os.lstat(folder)
    except OSError as exc:
        return [f"{folder.name}: cannot be read ({exc.strerror})"]
    if stat.S_ISLNK(st.st_mode):
        return [f"the folder {folder.name} is a symbolic link: submit the folder itself"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{folder.name} is not a folder"]
    problems, seen = [], 0
    expected = {str(Path(f)) for f in files}
    todo = [(folder, "")]
    while todo:
        current, prefix = todo.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{prefix or '.'}: cannot be listed ({exc.strerror})")
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                return problems + [f"more than {max_entries:,} files and folders: submit only your work"]
            name = prefix + entry.name
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append(f"{name}: cannot be read ({exc.strerror})")
                continue
            if stat.S_ISDIR(est.st_mode):
                if name in expected:
                    problems.append(f"{name} is a folder, not a file: submit the file itself")
                else:
                    todo.append((Path(entry.path), name + "/"))
                continue
            problem = _kind_problem(name, est, max_file_bytes)
            if problem:
                problems.append(problem)
    return sorted(problems)


def read_regular_file(path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; else :class:`SubmissionRefused`.

    Opened with ``O_NOFOLLOW | O_NONBLOCK`` (a link is refused, a FIFO does not block) and
    judged by ``fstat`` of what was opened, before anything is read.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise SubmissionRefused([f"{path.name} is a symbolic link: submit the file itself"]) from None
        raise
    try:
        problem = _kind_problem(path.name, os.fstat(fd), max_bytes)
        if problem:
            raise SubmissionRefused([problem])
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise SubmissionRefused([f"{path.name} grew past {max_bytes:,} bytes while being read"])
        return b"".join(chunks)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- text
_C0_C1 = {c for c in range(0x20)} | {0x7F} | set(range(0x80, 0xA0))


def escape_control(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with control characters (C0, DEL, C1: terminal escapes, ``\\r``, ...) shown as
    ``\\x1b``-style escapes, so that a log shows what a program printed instead of obeying it.
    Newlines are kept when ``keep_newlines`` (multi-line text such as an error's end)."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if code in _C0_C1 and not (keep_newlines and ch == "\n"):
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)
