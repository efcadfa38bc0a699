"""A submission is regular files only: links, FIFOs, sockets, devices, folders in a file's place,
hard links and oversized files are refused with a reason, without being followed or read
(:mod:`autograder.submission`). Each kind is made for real here (``mkfifo``, ``mknod``,
``os.link``, a sparse file of a terabyte)."""

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from autograder import submission
from autograder.submission import SubmissionRefused, check_submission, escape_control, read_regular_file

TERABYTE = 1 << 40


@pytest.fixture
def secret(tmp_path):
    """An instructor file outside the submission (a key)."""
    path = tmp_path / "instructor" / "key.txt"
    path.parent.mkdir()
    path.write_text("3, 14, 15\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def folder(tmp_path):
    """A submission folder with one honest file."""
    path = tmp_path / "student"
    path.mkdir()
    (path / "hw02.py").write_text("print('')\n")
    return path


def within(seconds, func, *args):
    """``func(*args)``'s result, failing (not hanging) if it takes longer than ``seconds``."""
    result = {}

    def target():
        try:
            result["value"] = func(*args)
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{func.__name__} still running after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_a_folder_of_regular_files_and_subfolders_passes(folder):
    (folder / "data").mkdir()
    (folder / "data" / "notes.txt").write_text("mine\n")
    assert check_submission(folder, files=("hw02.py",)) == []
    assert read_regular_file(folder / "hw02.py") == b"print('')\n"


def test_symbolic_link_to_the_key_is_refused_and_never_read(folder, secret):
    (folder / "notes.txt").symlink_to(os.path.relpath(secret, folder))
    assert check_submission(folder) == ["notes.txt is a symbolic link: submit the file itself"]
    with pytest.raises(SubmissionRefused, match="notes.txt is a symbolic link: submit the file itself"):
        read_regular_file(folder / "notes.txt")


def test_linked_program_in_a_subfolder_is_refused(folder, secret):
    (folder / "sub").mkdir()
    (folder / "sub" / "hw02.py").symlink_to(secret)
    assert check_submission(folder) == ["sub/hw02.py is a symbolic link: submit the file itself"]


def test_fifo_is_refused_without_blocking(folder):
    (folder / "hw02.py").unlink()
    os.mkfifo(folder / "hw02.py")
    assert within(5, check_submission, folder) == [
        "hw02.py is a named pipe (FIFO), not a file: submit the file itself"]
    with pytest.raises(SubmissionRefused, match="named pipe"):
        within(5, read_regular_file, folder / "hw02.py")


def test_socket_is_refused(folder):
    # AF_UNIX paths are limited to 108 bytes: bind from inside the folder
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("talk")
            assert check_submission(folder) == ["talk is a socket, not a file: submit the file itself"]
    finally:
        os.chdir(cwd)


def test_device_and_a_link_to_dev_zero_are_refused_without_reading(folder):
    os.mknod(folder / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
    (folder / "hw02.py").unlink()
    (folder / "hw02.py").symlink_to("/dev/zero")
    assert within(5, check_submission, folder) == [
        "hw02.py is a symbolic link: submit the file itself",
        "zero is a device, not a file: submit the file itself"]
    for name in ("hw02.py", "zero"):
        with pytest.raises(SubmissionRefused):
            within(5, read_regular_file, folder / name)


def test_folder_where_the_program_should_be_is_refused(folder):
    (folder / "hw02.py").unlink()
    (folder / "hw02.py").mkdir()
    (folder / "hw02.py" / "x.py").write_text("")
    assert check_submission(folder, files=("hw02.py",)) == [
        "hw02.py is a folder, not a file: submit the file itself"]
    assert submission.check_file(folder / "hw02.py") == "hw02.py is a folder, not a file: submit the file itself"


def test_hard_link_to_a_file_outside_is_refused(folder, secret):
    os.link(secret, folder / "notes.txt")
    assert check_submission(folder) == [
        "notes.txt is a hard link (2 names for the same file, which may lie outside the submission): "
        "submit a copy of the file"]
    with pytest.raises(SubmissionRefused, match="hard link"):
        read_regular_file(folder / "notes.txt")


def test_sparse_terabyte_file_is_refused_by_its_size_without_reading(folder):
    with open(folder / "hw02.py", "wb") as fh:
        fh.truncate(TERABYTE)  # costs nothing on disk; reading it would take hours
    start = time.perf_counter()
    problems = check_submission(folder)
    with pytest.raises(SubmissionRefused, match="the limit is"):
        read_regular_file(folder / "hw02.py")
    assert time.perf_counter() - start < 5
    assert problems == [f"hw02.py is {TERABYTE:,} bytes; the limit is {submission.MAX_FILE_BYTES:,} bytes"]


def test_the_submission_folder_itself_as_a_link_is_refused(folder, tmp_path):
    (tmp_path / "linked").symlink_to(folder)
    assert check_submission(tmp_path / "linked") == [
        "the folder linked is a symbolic link: submit the folder itself"]


def test_too_many_files_are_refused(folder):
    for i in range(12):
        (folder / f"f{i}").write_text("")
    assert check_submission(folder, max_entries=10)[-1].startswith("more than 10 files")


def test_control_characters_are_shown_escaped_in_logs():
    text = "ok\x1b[2J\x1b]0;pwned\x07\rfake line\x9b1m\nnext"
    assert escape_control(text) == "ok\\x1b[2J\\x1b]0;pwned\\x07\\x0dfake line\\x9b1m\nnext"
    assert escape_control(text, keep_newlines=False).count("\n") == 0


def test_homework_2_feedback_shows_a_crash_s_terminal_escapes_as_text():
    from autograder.hw02.rules import RunResult
    from autograder.nbgrader_plugins.hw02_grading import _describe

    run = RunResult(status="crashed", reason="exit status 1\x1b[2J", stderr_tail="Traceback\x1b]0;pwned\x07\x1b[8m")
    text = _describe(run, label="set1: ")
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07" in text and "exit status 1\\x1b[2J" in text


def test_a_file_swapped_for_a_link_after_the_check_is_still_refused(folder, secret):
    assert check_submission(folder) == []
    (folder / "hw02.py").unlink()
    (folder / "hw02.py").symlink_to(secret)
    with pytest.raises(SubmissionRefused, match="symbolic link"):
        read_regular_file(Path(folder) / "hw02.py")
