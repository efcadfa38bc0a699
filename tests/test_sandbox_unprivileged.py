"""Grading without root: the sandbox's unprivileged mode, run by a real ordinary account.

A temporary unix account (``nlgrader_<random>``, removed after, even on failure) grades as
itself, with the system-wide course environment (``tests/system_env.py``): homework 2's
stand-alone grader on a small class (the reference solution and hostile programs) and one
``nbgrader autograde``. Each hostile attempt is made for real (a file of the account
outside the sandbox, a process of the account, the keyrings, a fork bomb, memory past the
cap), and after grading nothing of the runs is alive and nothing in the course folder
belongs to anyone but the account. The cgroup part runs with a subtree delegated by
``python -m autograder.sandbox.delegate`` under a name of its own
(``$NOISYLABELS_SANDBOX_CGROUP``), so a machine's real ``noisylabels-grading`` is never touched.
"""

import contextlib
import csv
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.hw02 import rules
from autograder.sandbox import cgroup
from system_env import course_env, system_env_problem

ROOT = Path(__file__).resolve().parent.parent
HW02 = ROOT / "solutions" / rules.HW02


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason):
    if _ci():
        pytest.fail(f"CI must run the unprivileged sandbox tests: {reason}")
    pytest.skip(reason)


# ----------------------------------------------------------------------------- quick checks
def test_the_unprivileged_command_line_makes_a_user_namespace_and_limits_processes_inside_it():
    if shutil.which("bwrap") is None:
        _unavailable("bubblewrap is not installed")
    argv = sandbox.bwrap_arguments(["python3", "x.py"], uid=os.getuid(), runtime=sandbox.Runtime(packages=()),
                                   limits=sandbox.Limits(processes=32), workdir="/submission", env={},
                                   user_namespace=True)
    command = argv[argv.index("--"):]
    assert "--unshare-user" in argv and argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "setpriv" not in argv  # no uid change: the run keeps the grader's uid
    if sandbox.nproc_counts_per_user_namespace():
        assert command == ["--", "prlimit", "--nproc=32:32", "--", "python3", "x.py"]


def test_unprivileged_mode_never_kills_every_process_of_the_uid(monkeypatch):
    monkeypatch.setattr(sandbox, "privileged", lambda: False)
    with pytest.raises(RuntimeError, match="refusing"):
        sandbox._kill_uid(os.getuid())


# ----------------------------------------------------------------------------- the account
class Account:
    """A temporary unix account in a temporary group of graders, and how to run a command as it."""

    def __init__(self, name, group, env_bin):
        self.name, self.group, self.env_bin = name, group, env_bin
        entry = pwd.getpwnam(name)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)
        self.course = self.home / "course"

    def env(self, **extra) -> list:
        values = {"HOME": str(self.home), "USER": self.name, "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
                  "PATH": f"{self.env_bin}:/usr/local/bin:/usr/bin:/bin", **extra}
        return [f"{k}={v}" for k, v in values.items()]

    def run(self, args, *, cwd=None, timeout=900, check=True, **extra_env):
        run = subprocess.run(["runuser", "-u", self.name, "--", "env", "-i", *self.env(**extra_env), *args],
                             cwd=cwd or self.course, capture_output=True, text=True, timeout=timeout)
        if check:
            assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
        return run

    def python(self, source, **kw):
        return self.run([str(self.env_bin / "python"), "-c", textwrap.dedent(source)], **kw)

    def processes(self) -> list:
        return processes_of(self.uid)

    def start(self, *command) -> subprocess.Popen:
        """A process of the account outside any sandbox (its pid is the command's)."""
        return subprocess.Popen(list(command), user=self.uid, group=self.gid, extra_groups=[], cwd="/")

    def give(self, path, text) -> None:
        """Write a file as the account's own."""
        Path(path).write_text(text)
        os.chown(path, self.uid, self.gid)

    def foreign_files(self, folder) -> list:
        """Files and folders under ``folder`` owned by anyone but the account (root included)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in [".", *dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                if os.lstat(path).st_uid != self.uid:
                    found.append((path, os.lstat(path).st_uid))
        return found


def processes_of(uid) -> list:
    """Live processes of ``uid`` (zombies excluded)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and "State:\tZ" not in open(f"/proc/{entry.name}/status").read():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def account():
    problem = system_env_problem() or sandbox.sandbox_problem()
    if problem:
        _unavailable(problem)
    env_bin = course_env()
    tag = secrets.token_hex(3)
    name, group = f"nlgrader_{tag}", f"nlgraders_{tag}"
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", group, name], check=True)
        try:
            user = Account(name, group, env_bin)
            os.chmod(user.home, 0o700)
            user.run(["mkdir", "-m", "0700", str(user.course)], cwd=user.home)
            yield user
        finally:
            for pid in processes_of(pwd.getpwnam(name).pw_uid):  # what the tests started as the account
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            subprocess.run(["userdel", "--remove", name], capture_output=True)
    finally:
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture(scope="module")
def delegated(account):
    """A cgroup subtree delegated to the account's group, under a name of this test's own."""
    if cgroup.v1_mounts().keys() < set(cgroup.CONTROLLERS):
        _unavailable("no cgroup v1 hierarchies for memory and pids here (delegation is v1 only)")
    subtree = f"nltest-{secrets.token_hex(3)}"
    env = dict(os.environ, NOISYLABELS_SANDBOX_CGROUP=subtree)
    command = [sys.executable, "-m", "autograder.sandbox.delegate", "--group", account.group]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    folders = [Path(point) / subtree for point, _ in cgroup.v1_mounts().values()]
    try:
        assert first.returncode == 0 and again.returncode == 0, first.stdout + again.stdout
        assert first.stdout.count(": created: ") == 2 and again.stdout.count("already delegated") == 2, first.stdout
        check = account.run([str(account.env_bin / "python"), "-m", "autograder.sandbox.delegate", "--check"],
                            NOISYLABELS_SANDBOX_CGROUP=subtree)
        assert check.stdout.count(f"this account ({account.uid}) can create run groups there") == 2, check.stdout
        yield subtree
    finally:
        for folder in folders:
            for child in folder.glob("*/") if folder.is_dir() else []:
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                folder.rmdir()


NOT_DELEGATED = "nltest-none"  # a subtree name that exists nowhere


# ----------------------------------------------------------------------------- runs
RUN_PROBE = """\
    import json, os, sys
    import pyseccomp
    from autograder import sandbox
    from autograder.sandbox import seccomp
    source = sys.argv[1]
    if sys.argv[4] == "allow-all":  # the filter replaced by one that allows every call
        allow_all = seccomp.to_bpf(pyseccomp.SyscallFilter(pyseccomp.ALLOW))
        seccomp.compiled_filter = lambda: allow_all
    limits = sandbox.Limits(memory=int(sys.argv[2]), processes=int(sys.argv[3]))
    result = sandbox.run_sandboxed([sys.executable, "-c", source], wall_seconds=60, limits=limits,
                                   runtime=sandbox.Runtime(packages=()))
    print(json.dumps({"out": result.stdout.decode(errors="replace"), "rc": result.returncode,
                      "memory_exhausted": result.memory_exhausted, "stderr": result.stderr_tail,
                      "weaker": sandbox.weaker_isolation(), "leftover": sandbox.leftover_processes(),
                      "privileged": sandbox.privileged()}))
    """

FORK_COUNT = """\
import os, time
made = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(20); os._exit(0)
    made += 1
print(made)
"""

MEMFD_HOARD = """\
import os
fds, chunk = [], b'x' * (32 << 20)
for i in range(32):
    fd = os.memfd_create('hoard'); os.write(fd, chunk); fds.append(fd)
print('held', sum(os.fstat(fd).st_size for fd in fds) >> 20, 'MB')
"""


def run_as(account, source, *, memory=512 * sandbox.MB, processes=32, subtree=NOT_DELEGATED, filter="seccomp"):
    run = account.run([str(account.env_bin / "python"), "-c", textwrap.dedent(RUN_PROBE), source,
                       str(memory), str(processes), filter], check=False, NOISYLABELS_SANDBOX_CGROUP=subtree)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_without_delegation_a_run_is_capped_by_its_own_process_count_and_says_what_it_lacks(account):
    """The account already runs 40 processes; a run limited to 32 still starts, and its fork
    bomb stops below 32: the limit counts the run's processes in its user namespace only."""
    sleepers = [account.start("sleep", "300") for _ in range(40)]
    try:
        time.sleep(1)
        assert len(account.processes()) >= 40
        result = run_as(account, FORK_COUNT, processes=32)
        assert result["privileged"] is False
        assert result["rc"] == 0, result
        assert 0 < int(result["out"]) < 32, result
        assert result["leftover"] == []
        weaker = " ".join(result["weaker"])
        assert "unprivileged mode" in weaker and "no delegated cgroup subtree" in weaker, weaker
        assert all(s.poll() is None for s in sleepers)  # the account's own processes untouched
    finally:
        for s in sleepers:
            s.kill()
            s.wait()


@pytest.mark.slow
def test_with_a_delegated_subtree_a_runs_memory_and_processes_are_capped_as_a_whole(account, delegated):
    hoard = run_as(account, MEMFD_HOARD, memory=512 * sandbox.MB, subtree=delegated)
    assert "held" not in hoard["out"], "1 GB of memfd under a 512 MB cap"
    assert hoard["rc"] != 0 and hoard["memory_exhausted"], hoard
    assert not any("cgroup" in w for w in hoard["weaker"]), hoard["weaker"]
    bomb = run_as(account, FORK_COUNT, processes=32, subtree=delegated)
    assert 0 < int(bomb["out"]) < 32, bomb
    for point, _ in cgroup.v1_mounts().values():  # every run removed its group
        assert [p for p in (Path(point) / delegated).iterdir() if p.is_dir()] == []


ORPHAN = """\
    import json, os, signal, subprocess, time
    from autograder import sandbox
    # a bubblewrap namespace whose watcher is killed (no --die-with-parent): its init lives on
    outer = subprocess.Popen(["bwrap", "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc",
                              "--dev", "/dev", "sleep", "60"])
    time.sleep(1)
    during = sandbox.leftover_processes()
    os.kill(outer.pid, signal.SIGKILL)
    outer.wait()
    time.sleep(0.5)
    after = sandbox.leftover_processes()
    print(json.dumps({"during": during, "after": after, "own": os.getpid()}))
    for pid in after:
        os.kill(pid, signal.SIGKILL)
    """


@pytest.mark.slow
def test_leftover_processes_are_the_namespaces_whose_run_is_over_never_the_accounts_own(account):
    sleeper = account.start("sleep", "120")
    try:
        found = json.loads(account.python(ORPHAN).stdout.strip().splitlines()[-1])
        assert found["during"] == []  # a namespace still watched by its bubblewrap: a run in progress
        assert len(found["after"]) == 2, found  # its init and sleep, once nothing watches them
        assert sleeper.pid not in found["after"] and found["own"] not in found["after"]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


KEYRING_PRELUDE = """\
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
NR = {NR!r}
def syscall(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r if r >= 0 else -ctypes.get_errno()
ring = {{"user": -4, "user-session": -5, "session": -3}}.get({WHERE!r}) or syscall("keyctl", 22, -1, -3)
"""
KEYRING_STORE = """\
key = syscall("add_key", b"user", b"channel", b"answers-of-a-strong-student", 27, ring) if ring > 0 or ring < -1 else ring
print("stored" if key > 0 else "refused: " + os.strerror(-key))
"""
KEYRING_READ = """\
key = syscall("keyctl", 10, ring, b"user", b"channel", 0)  # KEYCTL_SEARCH
buf = ctypes.create_string_buffer(64)
n = syscall("keyctl", 11, key, buf, 64) if key > 0 else key  # KEYCTL_READ
print(buf.raw[:n].decode() if n > 0 else "nothing: " + os.strerror(-n))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["user", "user-session", "session", "persistent"])
def test_a_key_stored_by_one_unprivileged_run_does_not_reach_the_next_even_without_the_filter(account, where):
    import pyseccomp

    numbers = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in ("add_key", "keyctl")}
    prelude = KEYRING_PRELUDE.format(NR=numbers, WHERE=where)
    filtered = run_as(account, prelude + KEYRING_STORE)
    assert filtered["out"].strip().startswith("refused: Operation not permitted"), filtered
    first = run_as(account, prelude + KEYRING_STORE, filter="allow-all")
    second = run_as(account, prelude + KEYRING_READ, filter="allow-all")
    assert first["rc"] == 0 and second["rc"] == 0, (first, second)
    assert first["out"].strip() == "stored", first  # the channel was open in the first run
    assert second["out"].strip() == "nothing: Required key not available", (first, second)


# ----------------------------------------------------------------------------- homework 2's grader
HOSTILE = """\
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = {NR!r}
def syscall(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r if r >= 0 else -ctypes.get_errno()
report = {{}}
for path in ({SECRET!r}, {HOME!r}):
    try:
        report[path] = open(path).read() if os.path.isfile(path) else os.listdir(path)
    except OSError as e:
        report[path] = type(e).__name__
try:
    os.kill({SLEEPER}, signal.SIGKILL)  # a process of the grading account, outside
    report["kill sleeper"] = "sent"
except OSError as e:
    report["kill sleeper"] = type(e).__name__
report["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
report["add_key"] = os.strerror(-syscall("add_key", b"user", b"x", b"y", 1, -3))  # into @s
found = syscall("keyctl", 10, -3, b"user", b"instructor-secret", 0)  # KEYCTL_SEARCH the session keyring
report["keyctl search"] = "found" if found > 0 else os.strerror(-found)
print("REPORT " + repr(report), file=sys.stderr, flush=True)
os.kill(-1, signal.SIGKILL)  # everything else it may signal (in its namespace: timeout)
sys.exit(1)
"""

FORK_BOMB = """\
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
        raise SystemExit(3)
"""


@pytest.mark.slow
def test_the_homework_2_grader_as_an_ordinary_account_grades_and_contains_hostile_programs(account, delegated):
    course = account.course
    secret = account.home / "secret.txt"
    # /tmp entries of this uid from before the test (an earlier, removed account may have had it)
    earlier = {p for p in Path("/tmp").iterdir() if p.exists() and p.lstat().st_uid == account.uid}
    account.python(f"""\
        import os
        fd = os.open({str(secret)!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"the instructor's own")
        from autograder.hw02.data import make_final_sets
        make_final_sets("instructor/hw02_evil_twins", n_sets=1, seed=32, log=lambda *a: None)
        """)
    # a key in the grading account's session keyring, and a process of the account, both outside
    sleeper = account.start("sleep", "600")
    sleeper_pid = sleeper.pid
    numbers = {name: __import__("pyseccomp").resolve_syscall(__import__("pyseccomp").Arch.NATIVE, name)
               for name in ("add_key", "keyctl")}
    programs = {
        "reference": (HW02 / "hw02.py").read_text(),
        "mallory": HOSTILE.format(NR=numbers, SECRET=str(secret), HOME=str(account.home), SLEEPER=sleeper_pid),
        "bomber": FORK_BOMB,
    }
    for student, source in programs.items():
        account.run(["mkdir", "-p", str(course / "submissions" / student)])
        account.give(course / "submissions" / student / "hw02.py", source)
    keyring_and_grade = (
        "import ctypes, subprocess, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"libc.syscall({numbers['add_key']}, b'user', b'instructor-secret', b'42', 2, ctypes.c_long(-3))\n"
        "sys.exit(subprocess.run([sys.executable, '-m', 'autograder.hw02.grade', 'submissions', '--final',"
        " 'instructor/hw02_evil_twins', '--out', 'grades.csv', '--jobs', '2', '--time-limit', '2m']).returncode)\n")
    try:
        graded = account.run([str(account.env_bin / "python"), "-c", keyring_and_grade], check=False,
                             NOISYLABELS_SANDBOX_CGROUP=delegated, timeout=900)
        assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
        rows = {r["student"]: r for r in csv.DictReader(open(course / "grades.csv"))}
        assert rows["reference"]["status"] == "ok" and rows["reference"]["score"] == "100.0", rows["reference"]
        assert rows["reference"]["sandbox"] == "isolated"
        assert "weaker isolation on this machine: unprivileged mode" in graded.stdout, graded.stdout[-3000:]
        assert (rows["bomber"]["status"], rows["bomber"]["score"]) == ("crashed", "0.0"), rows["bomber"]
        assert rows["mallory"]["score"] == "0.0", rows["mallory"]
        log = (course / "grades.csv.log").read_text()
        line = next(line for line in log.splitlines() if "REPORT " in line)
        report = eval(line.split("REPORT ", 1)[1])  # noqa: S307 (the program's own repr of a dict of strings)
        assert report[str(secret)] == "FileNotFoundError" and report[str(account.home)] == "FileNotFoundError"
        assert report["kill sleeper"] == "ProcessLookupError", report  # not in its PID namespace
        assert max(report["pids"]) < 10, report  # its namespace's init, timeout, python: nothing outside
        assert report["add_key"] == "Operation not permitted", report
        assert report["keyctl search"] == "Operation not permitted", report
        assert sleeper.poll() is None  # the account's own process is alive
        # after grading: the account's only process is the sleeper, nothing of a run is left
        assert account.processes() == [sleeper_pid]
        assert account.python("from autograder import sandbox; print(sandbox.leftover_processes())").stdout.strip() == "[]"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert account.foreign_files(account.home) == []
    assert not [p for p in Path("/tmp").iterdir() if p.exists() and p.lstat().st_uid == account.uid and p not in earlier]


# ----------------------------------------------------------------------------- nbgrader autograde
HOSTILE_CELL = """\
import os, signal
found = {{}}
for path in ({SECRET!r}, {GRADEBOOK!r}):
    found[path] = os.path.exists(path)
try:
    os.kill({SLEEPER}, signal.SIGKILL); found['kill'] = 'sent'
except OSError as e:
    found['kill'] = type(e).__name__
found['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print('HOSTILE', found)
"""


@pytest.mark.slow
def test_nbgrader_autograde_as_an_ordinary_account_grades_homework_1_isolated(account, delegated):
    name = "hw01_label_corruption"
    course = account.course / "nbgrader"
    account.run(["mkdir", "-p", str(course / "solutions")])
    account.run(["cp", str(ROOT / "nbgrader_config.py"), str(course)])
    account.run(["cp", "-r", str(ROOT / "solutions" / name), str(course / "solutions" / name)])
    env = dict(NOISYLABELS_SIZE="quick", NOISYLABELS_SANDBOX_CGROUP=delegated)
    python = str(account.env_bin / "python")
    account.run([python, "-m", "noisylabels.cli", "assignments", name, "--register"], cwd=course, **env)
    secret = account.home / "secret-nb.txt"
    account.give(secret, "the instructor's own")
    sleeper = account.start("sleep", "900")
    sleeper_pid = sleeper.pid
    try:
        source = nbformat.read(course / "solutions" / name / f"{name}.ipynb", as_version=4)
        released = nbformat.read(course / "assignments" / name / f"{name}.ipynb", as_version=4)
        by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
        for cell in released.cells:  # the student writes the solutions into the released notebook
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in by_id:
                cell.source = by_id[grade_id].source
        setup = next(i for i, c in enumerate(released.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
        released.cells.insert(setup + 1, nbformat.v4.new_code_cell(HOSTILE_CELL.format(
            SECRET=str(secret), GRADEBOOK=str(course / "gradebook.db"), SLEEPER=sleeper_pid)))
        folder = course / "submitted" / "ann" / name
        account.run(["mkdir", "-p", str(folder)], cwd=course)
        account.give(folder / f"{name}.ipynb", nbformat.writes(released))

        account.run([python, "-m", "nbgrader", "autograde", name], cwd=course, timeout=1500, **env)
        account.run([python, "-m", "nbgrader", "export", "--to", "grades.csv"], cwd=course, **env)
        scores = {r["student_id"]: (float(r["raw_score"]), float(r["max_score"]))
                  for r in csv.DictReader(open(course / "grades.csv"))}
        assert scores["ann"][0] == scores["ann"][1] > 0, scores
        graded = nbformat.read(course / "autograded" / "ann" / name / f"{name}.ipynb", as_version=4)
        said = next("".join(o.get("text", "") for o in c.outputs) for c in graded.cells
                    if c.cell_type == "code" and "HOSTILE" in c.source)
        found = eval(said.split("HOSTILE ", 1)[1])  # noqa: S307 (a dict of plain values printed by the cell)
        assert found == {str(secret): False, str(course / "gradebook.db"): False, "kill": "ProcessLookupError",
                         "pids": found["pids"]}, found
        assert found["pids"][:2] == [1, 2]
        assert sleeper.poll() is None
        assert account.processes() == [sleeper_pid]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert account.foreign_files(account.home) == []
