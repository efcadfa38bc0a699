"""Homework 2, "evil twins": grading data, the scoring rule and the sandboxed runner.

Used by the homework's source notebook (``solutions/hw02_evil_twins``), its hidden
grade cell, the outside-nbgrader grader ``python -m autograder.evil_twins`` and
``benchmarks/evil_twins.py``.

An *evil twin* is a digit that looks the same as another digit of the file (an exact
copy, or a near copy: a little pixel noise or a one-pixel shift) but carries a
different, wrong label. Its good twin may also be absent from the file, leaving a
plain mislabelled digit. The student's ``hw02.py`` prints the indices it believes are
evil twins; errors = missed twins + flagged non-twins; the first 3 errors are free,
then 5 % off each.

Instructor command that writes a new grading set (IDX files, gzipped, plus the key)::

    python -m noisylabels.evil_twins make-data OUT_DIR --seed 2026 --size 165 \\
        --twins 15 --kind mixed

It writes ``OUT_DIR/digits_ubyte.gz``, ``OUT_DIR/labels_ubyte.gz`` and
``OUT_DIR/key.txt`` (the evil twins' indices, one line, comma separated). Keep the
key away from the submissions (see ``autograder/README.md``).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import read_idx_labels, write_idx_images, write_idx_labels

__all__ = [
    "TWIN_KINDS",
    "HW02",
    "FREE_ERRORS",
    "PENALTY_PER_ERROR",
    "DEFAULT_TIME_LIMIT",
    "TIME_LIMIT_ENV",
    "EvilTwinSet",
    "make_evil_twin_set",
    "write_evil_twin_files",
    "make_debugging_files",
    "read_key",
    "count_errors",
    "score_errors",
    "parse_indices",
    "RunResult",
    "timeout_command",
    "run_submission",
    "grade_submission",
    "grade_in_notebook",
    "STUDENT_STUB",
    "write_student_stub",
    "nbgrader_post_generate_hook",
]

#: The assignment's folder name in ``solutions/`` and ``assignments/``.
HW02 = "hw02_evil_twins"

#: What the generator can plant: exact copies, near copies (pixel noise or a one-pixel
#: shift), copies whose good twin is absent, a mix of the three, or no twins at all.
TWIN_KINDS = ("exact", "near", "absent", "mixed", "none")

FREE_ERRORS = 3
PENALTY_PER_ERROR = 5.0  # percent

#: The seed's rule: ``timeout -k 1s 3m python3 hw02.py ...``.
DEFAULT_TIME_LIMIT = "3m"
#: Environment variable that shortens (or lengthens) the limit, for tests only.
TIME_LIMIT_ENV = "NOISYLABELS_HW02_TIME_LIMIT"

DATA_NAME = "digits_ubyte.gz"
LABELS_NAME = "labels_ubyte.gz"
KEY_NAME = "key.txt"


# ----------------------------------------------------------------------------- grading data
@dataclass
class EvilTwinSet:
    """A generated file: ``images`` ``(n, 28, 28)`` uint8, ``labels`` ``(n,)``, ``evil`` (sorted indices).

    ``good_twin[i]`` is the index of evil twin ``i``'s good twin, or -1 when it is absent.
    """

    images: np.ndarray
    labels: np.ndarray
    evil: list
    good_twin: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)


def _all_offline_digits():
    from .data import load_offline_mnist

    X_train, y_train, X_test, y_test = load_offline_mnist()
    X = np.concatenate([X_train, X_test])
    y = np.concatenate([y_train, y_test])
    return np.rint(X * 255).astype(np.uint8), y.astype(np.int64)


def _near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy that still looks the same: a little pixel noise, a one-pixel shift, or both."""
    img = image.astype(np.float64)
    how = rng.choice(["noise", "shift", "both"])
    if how in ("shift", "both"):
        dy, dx = [(0, 1), (0, -1), (1, 0), (-1, 0)][rng.integers(4)]
        img = np.roll(np.roll(img, dy, axis=0), dx, axis=1)
    if how in ("noise", "both"):
        img = img + rng.normal(0.0, 12.0, size=img.shape) * (img > 0)
        # a few stray pixels switched on or off
        flips = rng.integers(0, 784, size=6)
        img.flat[flips] = np.where(img.flat[flips] > 127, 0, 200)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_evil_twin_set(size: int = 165, n_twins: int = 15, kind: str = "mixed", seed: int = 0,
                       absent: int | None = None, digits=None) -> EvilTwinSet:
    """Draw ``size`` digits from the offline MNIST set, ``n_twins`` of them evil twins.

    ``kind`` is one of :data:`TWIN_KINDS`: ``"exact"`` (pixel-for-pixel copies of a digit
    in the file), ``"near"`` (copies with a little noise or a one-pixel shift: they still
    look the same), ``"absent"`` (exact or near copies, ``absent`` of them, by default a
    third, with their good twin left out of the file), ``"mixed"`` (exact and near copies,
    ``absent`` of them, by default a fifth, without their good twin), ``"none"`` (no
    twins; ``n_twins`` ignored). ``absent`` may be set for any kind (``absent=n_twins``:
    every good twin is missing, and the twins are plain mislabelled digits). Each evil
    twin's label is drawn uniformly among the nine wrong classes. The same arguments
    give the same file on every machine.
    """
    if kind not in TWIN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TWIN_KINDS)}, got {kind!r}")
    if kind == "none":
        n_twins = 0
    if not 0 <= n_twins < size:
        raise ValueError(f"n_twins must be between 0 and size - 1, got {n_twins} for size {size}")
    if absent is None:
        absent = {"absent": n_twins // 3, "mixed": n_twins // 5}.get(kind, 0)
    if not 0 <= absent <= n_twins:
        raise ValueError(f"absent must be between 0 and n_twins ({n_twins}), got {absent}")
    X_all, y_all = digits if digits is not None else _all_offline_digits()
    rng = np.random.default_rng(seed)
    styles = {"exact": ["exact"], "near": ["near"]}.get(kind, ["exact", "near"])
    kinds = [styles[i % len(styles)] for i in range(n_twins - absent)] + ["absent"] * absent
    kinds = [str(k) for k in rng.permutation(kinds)] if kinds else []
    n_present = sum(k != "absent" for k in kinds)
    n_absent = n_twins - n_present
    n_clean = size - n_twins  # correctly labelled distinct digits in the file
    if n_clean < n_present:
        raise ValueError(f"{n_present} evil twins need at least as many clean digits (size too small)")
    drawn = rng.choice(len(X_all), size=n_clean + n_absent, replace=False)
    clean, hidden = drawn[:n_clean], drawn[n_clean:]
    images = [X_all[i] for i in clean]
    labels = [int(y_all[i]) for i in clean]
    sources = list(rng.choice(n_clean, size=n_present, replace=False))  # good twins present
    evil_rows, good_of, kind_of = [], {}, {}
    hidden = list(hidden)
    for k in kinds:
        if k == "absent":
            h = hidden.pop()
            src_img, true = X_all[h], int(y_all[h])
            twin_img = src_img.copy() if rng.random() < 0.5 else _near_copy(src_img, rng)
            good = -1
        else:
            good = int(sources.pop())
            src_img, true = images[good], labels[good]
            twin_img = src_img.copy() if k == "exact" else _near_copy(src_img, rng)
        wrong = int(rng.choice([c for c in range(10) if c != true]))
        evil_rows.append(len(images))
        good_of[len(images)] = good
        kind_of[len(images)] = k
        images.append(twin_img)
        labels.append(wrong)
    order = rng.permutation(len(images))  # new position -> old row
    where = np.empty_like(order)
    where[order] = np.arange(len(order))  # old row -> new position
    images = np.stack(images)[order]
    labels = np.asarray(labels, dtype=np.uint8)[order]
    evil = sorted(int(where[r]) for r in evil_rows)
    good_twin = {int(where[r]): (int(where[g]) if g >= 0 else -1) for r, g in good_of.items()}
    kinds_map = {int(where[r]): str(k) for r, k in kind_of.items()}
    return EvilTwinSet(images=images, labels=labels, evil=evil, good_twin=good_twin, kinds=kinds_map)


def write_evil_twin_files(out_dir, size: int = 165, n_twins: int = 15, kind: str = "mixed",
                          seed: int = 0, data_name: str = DATA_NAME, labels_name: str = LABELS_NAME,
                          key_name: str | None = KEY_NAME):
    """Generate a set (see :func:`make_evil_twin_set`) and write its IDX files and key.

    Returns ``(data_path, labels_path, key_path, evil)``; with ``key_name=None`` no key
    file is written (``key_path`` is ``None``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = make_evil_twin_set(size=size, n_twins=n_twins, kind=kind, seed=seed)
    data_path = write_idx_images(out / data_name, s.images, compress=True)
    labels_path = write_idx_labels(out / labels_name, s.labels, compress=True)
    key_path = None
    if key_name:
        key_path = out / key_name
        key_path.write_text(", ".join(map(str, s.evil)) + "\n")
    return data_path, labels_path, key_path, s.evil


#: The debugging files shipped with the homework: 165 digits, 15 exact evil twins, all
#: good twins present (as in seed 001).
DEBUG_SETTINGS = dict(size=165, n_twins=15, kind="exact", seed=462)


def make_debugging_files(out_dir):
    """Write the homework's ``bad_digits_ubyte.gz`` / ``bad_labels_ubyte.gz``; return the evil indices."""
    _, _, _, evil = write_evil_twin_files(out_dir, data_name="bad_digits_ubyte.gz",
                                          labels_name="bad_labels_ubyte.gz", key_name=None,
                                          **DEBUG_SETTINGS)
    return evil


def read_key(path) -> list:
    """The evil-twin indices of a key file (comma- or whitespace-separated integers)."""
    text = Path(path).read_text()
    return sorted({int(t) for t in re.split(r"[\s,]+", text.strip()) if t})


# ----------------------------------------------------------------------------- scoring
def count_errors(flagged, evil):
    """``(errors, missed, false_flags)``: missed evil twins plus flagged non-twins."""
    flagged, evil = set(int(i) for i in flagged), set(int(i) for i in evil)
    missed = len(evil - flagged)
    false_flags = len(flagged - evil)
    return missed + false_flags, missed, false_flags


def score_errors(errors: int) -> float:
    """The homework's score in percent: the first 3 errors free, then 5 % off each, never below 0."""
    return max(0.0, 100.0 - PENALTY_PER_ERROR * max(0, int(errors) - FREE_ERRORS))


_INDEX_LIST = re.compile(r"^\s*\[?\s*(\d+(\s*,\s*\d+)*)?\s*,?\s*\]?\s*$")


def parse_indices(stdout: str, n: int | None = None):
    """The indices a submission printed, or raise ``ValueError`` with the reason.

    The answer is the last non-empty line of standard output: integers separated by
    commas (``2, 3, 12``; brackets allowed, as Python prints a list). An empty output
    or an empty last line ``""`` / ``[]`` means "no evil twins". Indices must lie in
    ``0 .. n-1`` when ``n`` is given; repeats count once.
    """
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return []
    last = lines[-1].strip()
    if not _INDEX_LIST.match(last):
        shown = last if len(last) <= 80 else last[:77] + "..."
        raise ValueError(f"the last line of output is not a comma-separated list of integers: {shown!r}")
    values = sorted({int(t) for t in re.findall(r"\d+", last)})
    if n is not None:
        bad = [v for v in values if v >= n]
        if bad:
            raise ValueError(f"index {bad[0]} is out of range (the file has {n} digits, 0 to {n - 1})")
    return values


# ----------------------------------------------------------------------------- running a submission
KB, MB, GB = 1024, 1024 ** 2, 1024 ** 3

#: Limits on every run of a submission (all can be changed per call).
DEFAULT_LIMITS = dict(
    memory=6 * GB,          # RLIMIT_AS: address space of each process
    processes=256,          # at most this many processes / threads alive at once
    file_size=64 * MB,      # RLIMIT_FSIZE: largest file it may write (its stdout included)
    output=1 * MB,          # standard output read (more is "bad_output")
)

STATUSES = ("ok", "timeout", "crashed", "bad_output")


@dataclass
class RunResult:
    """What one run of a submission did: ``status`` is one of :data:`STATUSES`."""

    status: str
    flagged: list | None = None
    seconds: float = 0.0
    reason: str = ""
    returncode: int | None = None
    stderr_tail: str = ""


def parse_time_limit(text) -> float:
    """Seconds in a ``timeout`` duration: ``"3m"`` -> 180, ``"20s"`` -> 20, ``"1.5"`` -> 1.5."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", str(text))
    if not m:
        raise ValueError(f"not a timeout duration: {text!r} (use e.g. 3m, 90s)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def describe_time_limit(text) -> str:
    """``"3m"`` -> ``"3 minutes"``, ``"20s"`` -> ``"20 seconds"``."""
    seconds = parse_time_limit(text)
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def current_time_limit(time_limit=None) -> str:
    """``time_limit`` if given, else ``$NOISYLABELS_HW02_TIME_LIMIT``, else ``"3m"``."""
    limit = time_limit or os.environ.get(TIME_LIMIT_ENV) or DEFAULT_TIME_LIMIT
    parse_time_limit(limit)
    return str(limit)


def timeout_command(data: str, labels: str, time_limit=None, program: str = "hw02.py") -> list:
    """The command every submission runs as: ``timeout -k 1s 3m python3 hw02.py --data D --labels L``."""
    return ["timeout", "-k", "1s", current_time_limit(time_limit), "python3", program,
            "--data", data, "--labels", labels]


def _processes_with_token(token: str) -> list:
    """Pids of live processes whose environment carries ``token`` (our submission's)."""
    needle = token.encode()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                if needle in fh.read():
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _kill_all(proc, token: str) -> None:
    """Kill the submission's process group, then any process still carrying its token."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for _ in range(20):
        pids = [p for p in _processes_with_token(token) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


def _user_task_count() -> int:
    """Processes and threads this user has now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(f"/proc/{entry.name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _limits_preexec(seconds: float, limits: dict):
    nproc = _user_task_count() + limits["processes"]

    def preexec():  # runs in the child between fork and exec
        os.setsid()  # its own session and process group, killed as a whole
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size"], limits["file_size"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        cpu = int(seconds * 2 + 30)  # two cores for the whole limit, plus start-up
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        # RLIMIT_NPROC counts all of this user's processes; root is exempt from it, so
        # the grader also counts the submission's processes itself (see run_submission).
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return preexec


def _interpreter_bin_dir() -> str:
    """The folder whose ``python3`` has torch and numpy: this interpreter's (the venv's)."""
    return os.path.dirname(os.path.abspath(sys.executable))


def _read_head(path, limit):
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def _read_tail(path, limit=2000):
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read().decode("utf-8", "replace")


def run_submission(program, data, labels, *, time_limit=None, helpers=(), scratch_root=None,
                   limits: dict | None = None, n_digits: int | None = None) -> RunResult:
    """Run a student's ``hw02.py`` on one data set in a sandbox and parse what it printed.

    The program runs as ``timeout -k 1s 3m python3 hw02.py --data D --labels L``
    (:func:`timeout_command`; ``time_limit`` or ``$NOISYLABELS_HW02_TIME_LIMIT``
    changes the 3m) in a fresh scratch directory holding only a copy of the program,
    the ``helpers`` (the course's ``mnist_util.py``) and copies of the two data files;
    ``python3`` is this interpreter's, put first on a clean ``PATH``; the environment
    holds nothing else of the grader's (no key path). Limits: address space, file size,
    CPU time and processes (``limits``, see :data:`DEFAULT_LIMITS`); at most
    ``limits["output"]`` bytes of standard output are read. The scratch directory and
    every process left behind are removed afterwards. Never raises for anything the
    submission does.
    """
    lim = dict(DEFAULT_LIMITS, **(limits or {}))
    limit_text = current_time_limit(time_limit)
    seconds_limit = parse_time_limit(limit_text)
    # A private folder whose only content is the scratch folder: what the program writes
    # or deletes next to itself ("..") is removed with it afterwards.
    base = Path(tempfile.mkdtemp(prefix="hw02-run-", dir=scratch_root))
    scratch = base / "work"
    scratch.mkdir()
    logs = Path(tempfile.mkdtemp(prefix="hw02-log-"))
    token = f"NOISYLABELS_SANDBOX={os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}"
    try:
        shutil.copyfile(program, scratch / "hw02.py")
        for helper in helpers:
            shutil.copyfile(helper, scratch / Path(helper).name)
        data_name, labels_name = Path(data).name, Path(labels).name
        shutil.copyfile(data, scratch / data_name)
        shutil.copyfile(labels, scratch / labels_name)
        env = {
            "PATH": os.pathsep.join([_interpreter_bin_dir(), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
            token.split("=")[0]: token.split("=", 1)[1],
        }
        cmd = timeout_command(data_name, labels_name, limit_text)
        out_path, err_path = logs / "stdout", logs / "stderr"
        start = time.perf_counter()
        too_many = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, preexec_fn=_limits_preexec(seconds_limit, lim),
                                    close_fds=True)
            hard_stop = start + seconds_limit + 15  # in case timeout itself is stopped
            next_count = start + 0.2
            while True:
                try:
                    proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.perf_counter()
                if now >= next_count:
                    next_count = now + 0.2
                    if len(_processes_with_token(token)) > lim["processes"]:
                        too_many = True
                        _kill_all(proc, token)
                if now > hard_stop:
                    _kill_all(proc, token)
            _kill_all(proc, token)  # anything it left running in the background
        seconds = time.perf_counter() - start
        rc = proc.returncode
        stdout = _read_head(out_path, lim["output"])
        stderr_tail = _read_tail(err_path)
        out_size = out_path.stat().st_size
    except Exception as exc:  # our own failure (disk full, missing file): say so
        return RunResult("crashed", reason=f"the grader could not run it: {exc}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    result = RunResult("ok", seconds=round(seconds, 2), returncode=rc, stderr_tail=stderr_tail)
    if too_many:
        result.status, result.reason = "crashed", (
            f"started more than {lim['processes']} processes at once (stopped)")
    elif rc in (124, 137, -signal.SIGKILL) and seconds >= seconds_limit - 0.5:
        result.status, result.reason = "timeout", f"timed out after {describe_time_limit(limit_text)}"
    elif out_size >= lim["file_size"] or len(stdout) > lim["output"]:
        result.status, result.reason = "bad_output", (
            f"printed more than {lim['output'] // MB} MB of output")
    elif rc != 0:
        what = f"exit status {rc}"
        if rc > 128:
            try:
                what = f"killed by {signal.Signals(rc - 128).name}"
            except ValueError:
                pass
        if "MemoryError" in stderr_tail:
            what += ", out of memory"
        result.status, result.reason = "crashed", f"crashed ({what})"
    else:
        try:
            result.flagged = parse_indices(stdout.decode("utf-8", "replace"), n_digits)
        except ValueError as exc:
            result.status, result.reason = "bad_output", str(exc)
    return result


# ----------------------------------------------------------------------------- grading
@dataclass
class Grade:
    """A submission's grade over one or more data sets (score = mean of their scores)."""

    status: str
    score: float
    errors: int | None = None
    missed: int | None = None
    false_flags: int | None = None
    seconds: float = 0.0
    reason: str = ""
    stderr_tail: str = ""
    runs: list = field(default_factory=list)

    def row(self, student: str) -> dict:
        return dict(student=student, errors="" if self.errors is None else self.errors,
                    missed="" if self.missed is None else self.missed,
                    false_flags="" if self.false_flags is None else self.false_flags,
                    score=f"{self.score:.1f}", status=self.status, seconds=f"{self.seconds:.1f}")


def grade_submission(program, datasets, *, time_limit=None, helpers=(), scratch_root=None,
                     limits=None) -> Grade:
    """Grade ``program`` on ``datasets``: a list of ``(data_path, labels_path, evil_indices)``.

    Each data set is run by :func:`run_submission`; a run that does not end ``ok``
    scores 0 on that set. The score is the mean over the sets; errors, missed and false
    flags are summed over the sets that ran; the status is ``ok`` or the first other
    status met.
    """
    scores, runs = [], []
    errors = missed = false_flags = 0
    any_ok = False
    status, reason, tail, seconds = "ok", "", "", 0.0
    for data, labels, evil in datasets:
        n = len(read_idx_labels(labels))
        run = run_submission(program, data, labels, time_limit=time_limit, helpers=helpers,
                             scratch_root=scratch_root, limits=limits, n_digits=n)
        runs.append(run)
        seconds += run.seconds
        if run.status != "ok":
            scores.append(0.0)
            if status == "ok":
                status, reason, tail = run.status, run.reason, run.stderr_tail
            continue
        any_ok = True
        e, m, f = count_errors(run.flagged, evil)
        errors, missed, false_flags = errors + e, missed + m, false_flags + f
        scores.append(score_errors(e))
    score = float(np.mean(scores)) if scores else 0.0
    if not any_ok:
        errors = missed = false_flags = None
    return Grade(status=status, score=round(score, 2), errors=errors, missed=missed,
                 false_flags=false_flags, seconds=round(seconds, 1), reason=reason,
                 stderr_tail=tail, runs=runs)


def course_helpers(assignment_dir=None) -> list:
    """The helper files a submission may import (``mnist_util.py`` of the assignment)."""
    if assignment_dir is None:
        assignment_dir = Path(__file__).resolve().parent.parent / "solutions" / HW02
    helper = Path(assignment_dir) / "mnist_util.py"
    return [helper] if helper.exists() else []


def grade_in_notebook(program="hw02.py", sets=(), points: float = 100.0, helpers=None,
                      time_limit=None, show=print) -> float:
    """The hidden grade cell's work: grade ``program`` on freshly generated data sets.

    ``sets`` are keyword dictionaries for :func:`make_evil_twin_set` (the hidden seeds
    live in the grade cell only). The data are written to a temporary directory outside
    the submission's folder; the key stays in memory. Prints the feedback (errors,
    missed, wrongly flagged, score; never the key) on standard output only, and returns
    the points ``points * score / 100`` for nbgrader's partial credit.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if helpers is None:
            helpers = [h for h in [Path(program).resolve().parent / "mnist_util.py"] if h.exists()]
        program = Path(program)
        if not program.exists():
            show(f"No {program.name} found next to the notebook: 0 points.")
            return 0.0
        with tempfile.TemporaryDirectory(prefix="hw02-grading-") as tmp:
            datasets = []
            for i, kw in enumerate(sets):
                s = make_evil_twin_set(**kw)
                d = write_idx_images(Path(tmp) / f"final{i}_digits_ubyte.gz", s.images, compress=True)
                lab = write_idx_labels(Path(tmp) / f"final{i}_labels_ubyte.gz", s.labels, compress=True)
                datasets.append((d, lab, s.evil))
            grade = grade_submission(program, datasets, time_limit=time_limit, helpers=helpers)
        for i, run in enumerate(grade.runs, 1):
            if run.status == "ok":
                e, m, f = count_errors(run.flagged, datasets[i - 1][2])
                show(f"Final data set {i}: {e} errors ({m} evil twins missed, {f} digits wrongly "
                     f"flagged): {score_errors(e):.0f} %, {run.seconds:.0f} s")
            else:
                show(f"Final data set {i}: 0 % ({run.status}): {run.reason}")
                if run.status == "crashed" and run.stderr_tail.strip():
                    show("End of its error output:\n" + run.stderr_tail.strip()[-1500:])
        show(f"Score: {grade.score:.1f} %")
        return round(points * grade.score / 100.0, 2)


def check_on_debugging_files(program="hw02.py", folder=".", time_limit=None, show=print) -> Grade:
    """The notebook's "check your work": run ``hw02.py`` on the debugging files as the grader would.

    Shows the errors and the score it would get on them; returns the :class:`Grade`.
    """
    folder = Path(folder)
    data, labels = folder / "bad_digits_ubyte.gz", folder / "bad_labels_ubyte.gz"
    evil = make_evil_twin_set(**DEBUG_SETTINGS).evil
    grade = grade_submission(folder / program, [(data, labels, evil)], time_limit=time_limit,
                             helpers=course_helpers(folder))
    if grade.status != "ok":
        show(f"{grade.status}: {grade.reason}")
        if grade.stderr_tail.strip():
            show("End of its error output:\n" + grade.stderr_tail.strip()[-1500:])
    else:
        run = grade.runs[0]
        show(f"hw02.py printed {len(run.flagged)} indices in {run.seconds:.0f} s: "
             f"{grade.errors} errors ({grade.missed} evil twins missed, {grade.false_flags} "
             f"digits wrongly flagged)")
    show(f"Score on the debugging files: {grade.score:.0f} %")
    return grade


# ----------------------------------------------------------------------------- the student's stub
#: The ``hw02.py`` students receive (``solutions/hw02_evil_twins/hw02.py`` is the
#: reference solution, which nbgrader would otherwise copy verbatim into the release).
STUDENT_STUB = '''\
# Author: your name
# Netid: your netid
# Aid: If in doubt, list anything your referenced. A stack overflow post, chatgpt, gemini, your friend Bob, etc. If referring to an LLM, you must included a link to a particular session. Just saying "I asked chatgpt" isn't a get out of trouble free statement. If two submissions are nearly identical and nothing is listed, I will have to assume that there was copying with an attempt at obfuscation.
"""Homework 2, "evil twins": print the indices of the mislabelled digits.

    python3 hw02.py --data bad_digits_ubyte.gz --labels bad_labels_ubyte.gz

must print your best guess of the evil twins' indices as one comma-separated line,
for example ``2, 3, 12, 19``. Start from train_linear_mnist.py and mnist_util.py.
"""

import argparse

import mnist_util


def find_evil_twins(images, labels):
    """Return the list of indices you believe are evil twins."""
    # YOUR CODE HERE: train, look at what the network gets wrong, combine runs.
    return []


def main():
    parser = argparse.ArgumentParser(description="Find the evil twins in an MNIST-format file.")
    parser.add_argument("--data", required=True, help="IDX image file, e.g. bad_digits_ubyte.gz")
    parser.add_argument("--labels", required=True, help="IDX label file, e.g. bad_labels_ubyte.gz")
    args = parser.parse_args()
    images = mnist_util.read_images(args.data)
    labels = mnist_util.read_labels(args.labels)
    print(", ".join(str(i) for i in find_evil_twins(images, labels)))


if __name__ == "__main__":
    main()
'''


def write_student_stub(release_dir) -> Path:
    """Put the student stub at ``release_dir/hw02.py`` (over the reference nbgrader copied).

    Run after every ``nbgrader generate_assignment hw02_evil_twins``: the course's
    ``nbgrader_config.py`` does it through :func:`nbgrader_post_generate_hook`, and
    ``noisylabels assignments`` may call it directly.
    """
    path = Path(release_dir) / "hw02.py"
    path.write_text(STUDENT_STUB)
    return path


def _nbgrader_release_dir(assignment, fallback):
    """The release folder of the running nbgrader command (it may override the config's)."""
    try:
        from traitlets.config import Application

        app = Application.instance() if Application.initialized() else None
        while app is not None and getattr(app, "subapp", None) is not None:
            app = app.subapp
        coursedir = getattr(app, "coursedir", None)
        if coursedir is not None:
            return Path(coursedir.format_path(coursedir.release_directory, ".", assignment))
    except Exception:
        pass
    return Path(fallback) / assignment


def nbgrader_post_generate_hook(course_root, release_directory="assignments"):
    """A ``GenerateAssignment.post_convert_hook`` for ``nbgrader_config.py``.

    After nbgrader generates ``hw02_evil_twins`` it replaces the released ``hw02.py``
    (a verbatim copy of the reference solution) by :data:`STUDENT_STUB`, so that plain
    ``nbgrader generate_assignment hw02_evil_twins`` gives students the stub.
    """

    def hook(assignment=None, student=None, notebooks=None, **_):
        if assignment == HW02:
            release = _nbgrader_release_dir(HW02, Path(course_root) / release_directory)
            if release.is_dir():
                write_student_stub(release)

    return hook


# ----------------------------------------------------------------------------- command line
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m noisylabels.evil_twins",
        description="Homework 2 (evil twins): write grading data, or the debugging files.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-data", help="write digits_ubyte.gz, labels_ubyte.gz and key.txt")
    make.add_argument("out_dir")
    make.add_argument("--seed", type=int, required=True, help="keep it secret until grading is done")
    make.add_argument("--size", type=int, default=165, help="number of digits (default 165)")
    make.add_argument("--twins", type=int, default=15, help="number of evil twins (0 for none)")
    make.add_argument("--kind", choices=TWIN_KINDS, default="mixed")
    make.add_argument("--absent", type=int, default=None,
                      help="evil twins without their good twin (default: a fifth for mixed, "
                           "a third for absent, else 0)")
    debug = sub.add_parser("make-debugging-files", help="rewrite the homework's bad_*_ubyte.gz files")
    debug.add_argument("out_dir")
    args = parser.parse_args(argv)
    if args.command == "make-data":
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        s = make_evil_twin_set(size=args.size, n_twins=args.twins, kind=args.kind,
                               absent=args.absent, seed=args.seed)
        write_idx_images(out / DATA_NAME, s.images, compress=True)
        write_idx_labels(out / LABELS_NAME, s.labels, compress=True)
        (out / KEY_NAME).write_text(", ".join(map(str, s.evil)) + "\n")
        print(f"wrote {out / DATA_NAME}, {out / LABELS_NAME} ({len(s.labels)} digits) and "
              f"{out / KEY_NAME} ({len(s.evil)} evil twins)")
    else:
        evil = make_debugging_files(args.out_dir)
        print("evil twins:", ", ".join(map(str, evil)))


if __name__ == "__main__":
    main()
