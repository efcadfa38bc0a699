"""A class on a shared server (issue 23): ``deploy/install.sh``, ``noisylabels doctor``
(``autograder/permissions.py``), and one exchange for the instructor's lab and nbgrader's tools.

Quick tests check the doctor on a folder tree made here (each broken permission found, its
printed fix repairs it), the roster's errors, install.sh's refusals and the exchange choice.
The slow tests run install.sh for real, as root, with temporary accounts (``nlc1_<random>``:
an instructor, a grader, two students; removed afterwards, also on failure), folders under
/tmp and the system-wide test environment (``tests/system_env.py``); then a release, fetch,
submit, collect round with the real nbgrader commands run as each account, and each attack
of issue 23 tried as a student account. Under ``CI=true`` a missing tool fails them.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from autograder import permissions
from autograder.permissions import (
    check_course, check_exchange, check_homes, check_system_config, read_roster, system_config_text,
)
from noisylabels.lab import exchange_root, lab_command

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "deploy" / "install.sh"
HW01 = "hw01_label_corruption"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _needs_root():
    if os.geteuid() != 0:
        message = "these checks make folders owned by other accounts: run as root"
        if _ci():
            pytest.fail(message)
        pytest.skip(message)


def _run_fix(command: str) -> None:
    """Run a fix the doctor printed (as root here: ``sudo`` dropped)."""
    subprocess.run(command.replace("sudo ", ""), shell=True, check=True, capture_output=True)


def _problems(checks) -> list[str]:
    return [f"{c.what}: {c.problem}" for c in checks if not c.ok]


# ------------------------------------------------------------------------------------------ quick: doctor
@pytest.fixture
def good_tree():
    """A correct class layout under a folder every account can enter, owned by ``nobody``/``nogroup``."""
    _needs_root()
    base = Path(tempfile.mkdtemp(prefix="nlc1_unit_", dir="/tmp"))
    base.chmod(0o755)
    owner, group = pwd.getpwnam("nobody"), grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    course, exchange, config, home = base / "course", base / "exchange", base / "etc", base / "home"
    for folder in ("submitted/ann/hw01", "autograded/ann/hw01", "feedback", "solutions/hw01", "instructor"):
        (course / folder).mkdir(parents=True)
    (course / "submitted/ann/hw01/hw01.ipynb").write_text("{}")
    (course / "gradebook.db").write_text("")
    (course / "nbgrader_grades.csv").write_text("student,score\n")
    for path in [course, *course.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o2770 if path.is_dir() else 0o660)
    exchange.mkdir(mode=0o755)
    exchange.chmod(0o1777)
    for sub, mode in permissions.EXCHANGE_COURSE_MODES.items():
        path = exchange / "noisy-labels" / sub
        path.mkdir(exist_ok=True)
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(mode)
    config.mkdir(mode=0o755)
    (config / "nbgrader_config.py").write_text(system_config_text(exchange))
    (config / "nbgrader_config.py").chmod(0o644)
    home.mkdir(mode=0o700)
    tree = dict(base=base, course=course, exchange=exchange, config=config, home=home,
                instructor="nobody", group=group)
    yield tree
    shutil.rmtree(base, ignore_errors=True)


def _all_checks(t) -> list:
    return (check_course(t["course"], group=t["group"], instructor=t["instructor"])
            + check_exchange(t["exchange"], t["instructor"], group=t["group"])
            + check_homes({"ann": t["home"]})
            + check_system_config(t["exchange"], config_dirs=[str(t["config"])]))


BREAKAGES = {
    "course folder open to others": lambda t: t["course"].chmod(0o2775),
    "submitted/ world-writable": lambda t: (t["course"] / "submitted").chmod(0o777),
    "a submission readable by others": lambda t: (t["course"] / "submitted/ann/hw01/hw01.ipynb").chmod(0o664),
    "gradebook readable by others": lambda t: (t["course"] / "gradebook.db").chmod(0o664),
    "grade file readable by others": lambda t: (t["course"] / "nbgrader_grades.csv").chmod(0o664),
    "solutions readable by others": lambda t: (t["course"] / "solutions/hw01").chmod(0o2775),
    "a root-owned file from grading with sudo": lambda t: (t["course"] / "autograded/ann/hw01/x.ipynb").write_text("{}"),
    "course folder without setgid": lambda t: t["course"].chmod(0o770),
    "exchange root without the sticky bit": lambda t: t["exchange"].chmod(0o777),
    "inbound listable": lambda t: (t["exchange"] / "noisy-labels/inbound").chmod(0o3777),
    "a submission in inbound open to others (nbgrader's 0777)": lambda t: (
        (t["exchange"] / "noisy-labels/inbound/ann+hw01+2026-01-01 00:00:00 UTC+x").mkdir(mode=0o777),
        (t["exchange"] / "noisy-labels/inbound/ann+hw01+2026-01-01 00:00:00 UTC+x").chmod(0o777)),
    "inbound in a group students share": lambda t: os.chown(t["exchange"] / "noisy-labels/inbound", -1, 0),
    "system config without the closed submit": lambda t: (t["config"] / "nbgrader_config.py").write_text(
        "\n".join(system_config_text(t["exchange"]).splitlines()[:4]) + "\n"),
    "outbound writable by others": lambda t: (t["exchange"] / "noisy-labels/outbound").chmod(0o777),
    "course folder in the exchange hijacked by another account": lambda t: os.chown(t["exchange"] / "noisy-labels", 0, 0),
    "course folder in the exchange missing": lambda t: shutil.rmtree(t["exchange"] / "noisy-labels"),
    "home folder readable by others": lambda t: t["home"].chmod(0o755),
    "system config missing": lambda t: (t["config"] / "nbgrader_config.py").unlink(),
    "system config with another course id": lambda t: (t["config"] / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'other'\nc.Exchange.root = '/elsewhere'\n"),
    "system config writable by others": lambda t: (t["config"] / "nbgrader_config.py").chmod(0o666),
}


def test_doctor_checks_pass_on_a_correct_class_layout(good_tree):
    assert _problems(_all_checks(good_tree)) == []


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_doctor_finds_each_broken_permission_and_its_fix_repairs_it(good_tree, breakage):
    BREAKAGES[breakage](good_tree)
    failed = [c for c in _all_checks(good_tree) if not c.ok]
    assert failed, f"{breakage}: not detected"
    for check in failed:
        assert check.fix, check
        _run_fix(check.fix)
    assert _problems(_all_checks(good_tree)) == [], breakage


def test_doctor_command_prints_each_problem_with_the_fix_and_exits_1(good_tree, capsys):
    (good_tree["course"] / "submitted").chmod(0o777)
    good_tree["exchange"].chmod(0o777)
    status = permissions.doctor(good_tree["course"], good_tree["exchange"], instructor="nobody",
                                group=good_tree["group"], config_dirs=[str(good_tree["config"])])
    out = capsys.readouterr().out
    assert status == 1
    assert f"fix: sudo chmod -R o-rwx {good_tree['course'] / 'submitted'}" in out, out
    assert f"fix: sudo chmod 1777 {good_tree['exchange']}" in out, out
    assert re.fullmatch(r"\d+ of \d+ checks failed", out.strip().splitlines()[-1]), out  # also this .venv's own


def test_close_to_others_removes_only_the_permissions_of_others(tmp_path):
    (tmp_path / "s").mkdir(mode=0o777)
    (tmp_path / "s").chmod(0o777)
    (tmp_path / "s" / "a.ipynb").write_text("{}")
    (tmp_path / "s" / "a.ipynb").chmod(0o644)
    os.symlink("/etc/passwd", tmp_path / "s" / "link")
    before = stat.S_IMODE(os.stat("/etc/passwd").st_mode)
    assert permissions.close_to_others(tmp_path / "s") == 2
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o770
    assert stat.S_IMODE((tmp_path / "s" / "a.ipynb").stat().st_mode) == 0o640
    assert stat.S_IMODE(os.stat("/etc/passwd").st_mode) == before  # a link is never followed


# ------------------------------------------------------------------------------------------ quick: roster, install.sh refusals
@pytest.mark.parametrize("text, message", [
    ("username,role\nann,student\nann,grader\n", "ann is listed twice"),
    ("username,role\nAnn Lee,student\n", "is not a valid account name"),
    ("username,role\nann,teacher\n", "role 'teacher' for ann is not one of student, grader, instructor"),
    ("user,role\nann,student\n", "missing column(s) username"),
    ("username,role,first_name,last_name\nann,student,A:nn,Lee\n", "holds a tab, colon, comma or line break"),
])
def test_roster_errors_name_the_line_and_the_problem(tmp_path, text, message):
    (tmp_path / "roster.csv").write_text(text)
    with pytest.raises(ValueError, match=None) as err:
        read_roster(tmp_path / "roster.csv")
    assert message in str(err.value)


def test_roster_example_reads():
    accounts = read_roster(ROOT / "deploy" / "roster.example.csv")
    assert {a["role"] for a in accounts} == {"student", "grader"}


def test_install_sh_help_and_refusals_change_nothing(tmp_path):
    run = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--instructor USER" in run.stdout and "--env-bin" in run.stdout
    run = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True)
    assert run.returncode == 1 and "--instructor USER is required" in run.stderr
    if os.geteuid() != 0:
        return
    name = f"nlc1_{secrets.token_hex(3)}"
    (tmp_path / "roster.csv").write_text(f"username,role\n{name}_s,student\n{name}_s,grader\n")
    course = tmp_path / "course"
    run = subprocess.run(["bash", str(INSTALL), "--instructor", name, "--course", str(course),
                          "--exchange", str(tmp_path / "ex"), "--roster", str(tmp_path / "roster.csv"),
                          "--config-dir", str(tmp_path / "etc")], capture_output=True, text=True)
    assert run.returncode == 1 and "is listed twice" in run.stderr and "nothing was changed" in run.stderr
    assert not course.exists() and not (tmp_path / "ex").exists() and not (tmp_path / "etc").exists()
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    run = subprocess.run(["runuser", "-u", "nobody", "--", "bash", str(INSTALL), "--instructor", name],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "run as root" in run.stderr


# ------------------------------------------------------------------------------------------ quick: one exchange
def _config_dir(folder: Path, exchange) -> Path:
    folder.mkdir(parents=True)
    (folder / "nbgrader_config.py").write_text(system_config_text(exchange))
    return folder


def test_instructor_lab_uses_the_exchange_of_the_system_nbgrader_config(tmp_path, monkeypatch):
    import jupyter_core.paths as paths

    monkeypatch.setattr(paths, "SYSTEM_CONFIG_PATH", [str(tmp_path / "none")])
    monkeypatch.setattr(paths, "ENV_CONFIG_PATH", [str(tmp_path / "none")])
    course = tmp_path / "course"
    (course / "jupyter").mkdir(parents=True)
    env = {"HOME": str(tmp_path / "home"), "JUPYTER_CONFIG_DIR": str(tmp_path / "home" / ".jupyter"),
           "NOISYLABELS_EXCHANGE": str(tmp_path / "personal")}
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", env["JUPYTER_CONFIG_DIR"])
    # a laptop trial: no nbgrader_config sets an exchange
    assert exchange_root(course, {"HOME": env["HOME"]})[0] == course.resolve() / "exchange"
    assert exchange_root(course, env)[0] == tmp_path / "personal"
    # a class server: the system config's exchange, for the lab as for nbgrader's command-line tools
    system = _config_dir(tmp_path / "etc", tmp_path / "srv" / "exchange")
    env["JUPYTER_CONFIG_PATH"] = str(system)
    root, source = exchange_root(course, env)
    assert (root, source) == (tmp_path / "srv" / "exchange", str(system / "nbgrader_config.py"))
    _, lab_env = lab_command(course, instructor=True, env=env)
    assert lab_env["NOISYLABELS_EXCHANGE"] == str(tmp_path / "srv" / "exchange")
    assert lab_env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[-1] == str(system)
    # the course's own jupyter/instructor settings never count as the system's
    _config_dir(course / "jupyter" / "instructor2", tmp_path / "wrong")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(course / "jupyter" / "instructor2"), str(system)])
    assert exchange_root(course, env)[0] == tmp_path / "srv" / "exchange"


@pytest.mark.slow
def test_grading_outputs_are_group_readable_only_in_a_course_folder_closed_to_others(tmp_path):
    """nbgrader_config.py: umask 007 and 0440/0640 in a 2770 course folder, 077 and 0400/0600 elsewhere."""
    folders = {"shared": 0o2770, "open": 0o755, "private": 0o700}
    for name, mode in folders.items():
        (tmp_path / name).mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", tmp_path / name / "nbgrader_config.py")
        (tmp_path / name).chmod(mode)
    script = ("import os, sys\nfrom traitlets.config.loader import PyFileConfigLoader\n"
              "for folder in sys.argv[1:]:\n"
              "    c = PyFileConfigLoader('nbgrader_config.py', folder).load_config()\n"
              "    print(c.Autograde.permissions, c.GenerateFeedback.permissions, oct(os.umask(0o022)))\n")
    run = subprocess.run([sys.executable, "-c", script, *(str(tmp_path / n) for n in folders)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    results = dict(zip(folders, (line.split() for line in run.stdout.strip().splitlines())))
    assert results == {"shared": ["440", "640", "0o7"], "open": ["400", "600", "0o77"],
                       "private": ["400", "600", "0o77"]}


# ------------------------------------------------------------------------------------------ slow: a real class
def _system_env_bin() -> Path:
    from system_env import course_env, system_env_problem

    problem = system_env_problem()
    if problem:
        if _ci():
            pytest.fail(problem)
        pytest.skip(problem)
    return course_env()


class Klass:
    """A class set up by install.sh with temporary accounts; :meth:`run` runs a command as one of them."""

    def __init__(self, env_bin: Path):
        self.env_bin = env_bin
        self.prefix = f"nlc1_{secrets.token_hex(3)}"
        self.base = Path(tempfile.mkdtemp(prefix=self.prefix + "_", dir="/tmp"))
        self.base.chmod(0o755)
        self.course, self.exchange = self.base / "srv" / "course", self.base / "srv" / "exchange"
        self.config, self.kernels = self.base / "etc" / "jupyter", self.base / "kernels"
        self.instructor, self.grader = f"{self.prefix}_ins", f"{self.prefix}_gra"
        self.ann, self.bob = f"{self.prefix}_ann", f"{self.prefix}_bob"
        self.group = f"{self.prefix}_g"
        self.roster = self.base / "roster.csv"
        self.roster.write_text("username,role,first_name,last_name\n"
                               f"{self.ann},student,Ann,Lee\n{self.bob},student,Bob,Ray\n"
                               f"{self.grader},grader,Gail,Rand\n")
        self.accounts = [self.instructor, self.grader, self.ann, self.bob]

    def install(self) -> subprocess.CompletedProcess:
        cmd = ["bash", str(INSTALL), "--instructor", self.instructor, "--course", str(self.course),
               "--exchange", str(self.exchange), "--roster", str(self.roster), "--env-bin", str(self.env_bin),
               "--config-dir", str(self.config), "--kernel-prefix", str(self.kernels), "--group", self.group]
        # the grading delegate gets its own cgroup subtree, not the machine's
        env = dict(os.environ, NOISYLABELS_SANDBOX_CGROUP=self.prefix)
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)

    def home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    def run(self, user: str, *cmd, cwd=None, timeout=600) -> subprocess.CompletedProcess:
        home = self.home(user)
        env = ["env", "-i", f"--chdir={cwd or home}", f"HOME={home}", f"USER={user}",
               f"PATH={self.env_bin}:/usr/bin:/bin", f"JUPYTER_CONFIG_PATH={self.config}",
               f"JUPYTER_PATH={self.kernels / 'share' / 'jupyter'}", "OMP_NUM_THREADS=1"]
        return subprocess.run(["runuser", "-u", user, "--", *env, *[str(c) for c in cmd]],
                               capture_output=True, text=True, timeout=timeout)

    def ok(self, user: str, *cmd, **kw) -> str:
        run = self.run(user, *cmd, **kw)
        assert run.returncode == 0, f"{user}: {' '.join(map(str, cmd))}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
        return run.stdout + run.stderr

    def doctor(self, *extra) -> subprocess.CompletedProcess:
        cmd = [self.env_bin / "noisylabels", "doctor", "--course", self.course, "--exchange", self.exchange,
               "--instructor", self.instructor, "--group", self.group, "--config-dir", self.config,
               "--roster", self.roster, *extra]
        env = dict(os.environ, JUPYTER_PATH=str(self.kernels / "share" / "jupyter"))
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=600)

    def remove(self):
        for user in self.accounts:
            subprocess.run(["userdel", "-r", user], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)
        for controller in ("memory", "pids", "cpu"):
            folder = Path("/sys/fs/cgroup") / controller / self.prefix
            if folder.is_dir():
                for child in sorted(folder.rglob("*"), reverse=True):
                    if child.is_dir():
                        child.rmdir()
                folder.rmdir()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def klass():
    """install.sh run for a class of temporary accounts, then a release, fetch, submit, collect round."""
    env_bin = _system_env_bin()
    k = Klass(env_bin)
    try:
        k.first_install = k.install()
        assert k.first_install.returncode == 0, k.first_install.stdout[-4000:] + k.first_install.stderr[-4000:]
        k.ok(k.instructor, "noisylabels", "assignments", "--register", HW01, cwd=k.course)  # the README's step 1
        k.ok(k.instructor, "nbgrader", "release_assignment", HW01, cwd=k.course)
        k.answers = {}
        for student in (k.ann, k.bob):
            k.ok(student, "nbgrader", "fetch_assignment", HW01)  # the course id comes from the system config
            notebook = k.home(student) / HW01 / f"{HW01}.ipynb"
            k.answers[student] = f"answer of {student} {secrets.token_hex(8)}"
            k.ok(student, "python", "-c", ADD_CELL, notebook, k.answers[student])  # her work, as her account
            assert k.answers[student] in notebook.read_text()
            k.ok(student, "nbgrader", "submit", HW01)
        k.ok(k.instructor, "nbgrader", "collect", HW01, cwd=k.course)
        k.ok(k.instructor, "sh", "-c", "mkdir -p instructor/hw02_evil_twins && echo secret-key > instructor/hw02_evil_twins/key.txt",
             cwd=k.course)
        yield k
    finally:
        k.remove()


ADD_CELL = ("import json, sys\nnb = json.load(open(sys.argv[1]))\n"
            "nb['cells'].append({'cell_type': 'markdown', 'metadata': {}, 'source': sys.argv[2]})\n"
            "json.dump(nb, open(sys.argv[1], 'w'))\n")


def _submission(k, student) -> Path:
    return k.course / "submitted" / student / HW01 / f"{HW01}.ipynb"


@pytest.mark.slow
def test_install_sets_up_accounts_group_course_exchange_and_gradebook(klass):
    k = klass
    out = k.first_install.stdout
    for step in ("accounts", "grading group", "course environment", "kernel noisylabels", "system nbgrader configuration",
                 "exchange", "course folder", "gradebook", "grading delegate", "noisylabels doctor"):
        assert f"==> {step}" in out, out
    assert "all " in out and "checks passed" in out
    members = set(grp.getgrnam(k.group).gr_mem)
    assert {k.instructor, k.grader} <= members and not {k.ann, k.bob} & members
    for user in k.accounts:
        assert stat.S_IMODE(k.home(user).stat().st_mode) == 0o700, user
    course = k.course.stat()
    assert (pwd.getpwuid(course.st_uid).pw_name, grp.getgrgid(course.st_gid).gr_name) == (k.instructor, k.group)
    assert stat.S_IMODE(course.st_mode) == 0o2770
    assert (k.course / "lessons").is_dir() and (k.course / "solutions").is_dir() and (k.course / "nbgrader_config.py").is_file()
    assert not (k.course / ".git").exists() and not (k.course / ".venv").exists()
    assert not [p for p in k.course.rglob("*") if p.lstat().st_uid == 0]
    assert stat.S_IMODE(k.exchange.stat().st_mode) == 0o1777 and k.exchange.stat().st_uid == 0
    modes = {sub: stat.S_IMODE((k.exchange / "noisy-labels" / sub).stat().st_mode) for sub in (".", "outbound", "inbound", "feedback")}
    assert modes == {".": 0o755, "outbound": 0o755, "inbound": 0o3733, "feedback": 0o711}
    assert pwd.getpwuid((k.exchange / "noisy-labels").stat().st_uid).pw_name == k.instructor
    assert "noisy-labels" in (k.config / "nbgrader_config.py").read_text()
    assert (k.kernels / "share" / "jupyter" / "kernels" / "noisylabels" / "kernel.json").is_file()
    students = k.ok(k.instructor, "nbgrader", "db", "student", "list", cwd=k.course)
    assert f"{k.ann} (Lee, Ann)" in students and f"{k.bob} (Ray, Bob)" in students


@pytest.mark.slow
def test_install_twice_changes_nothing_and_doctor_passes_after_a_collect(klass):
    k = klass
    before = {p: (p.lstat().st_mode, p.lstat().st_uid, p.lstat().st_gid, p.read_bytes() if p.is_file() else None)
              for p in [k.course / "submitted", *(k.course / "submitted").rglob("*"), k.course / "gradebook.db"]}
    again = k.install()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "created" not in again.stdout.split("==> course environment")[0], again.stdout  # no account made twice
    assert "not overwritten" in again.stdout
    after = {p: (p.lstat().st_mode, p.lstat().st_uid, p.lstat().st_gid, p.read_bytes() if p.is_file() and p.suffix != ".db" else None)
             for p in before}
    assert {p: v[:3] for p, v in after.items()} == {p: v[:3] for p, v in before.items()}
    assert _submission(k, k.ann).read_bytes() == before[_submission(k, k.ann)][3]
    doctor = k.doctor()
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert doctor.stdout.strip().splitlines()[-1].startswith("all ") and "checks passed" in doctor.stdout
    # what collect wrote: closed to others, the grading group's
    for path in [_submission(k, k.bob).parent, _submission(k, k.bob)]:
        st = path.stat()
        assert st.st_mode & 0o007 == 0 and grp.getgrgid(st.st_gid).gr_name == k.group, path


def _refused(k, user, *cmd, errors=("Permission denied", "Operation not permitted")) -> None:
    run = k.run(user, *cmd)
    assert run.returncode != 0 and any(e in run.stderr for e in errors), (cmd, run.stdout, run.stderr)


@pytest.mark.slow
def test_a_student_cannot_read_or_change_what_is_not_theirs(klass):
    k = klass
    bob_file, bob_text = _submission(k, k.bob), _submission(k, k.bob).read_bytes()
    assert k.answers[k.bob].encode() in bob_text
    ann = k.ann
    _refused(k, ann, "cat", bob_file)
    _refused(k, ann, "sh", "-c", f"echo stolen >> '{bob_file}'")
    _refused(k, ann, "rm", "-f", bob_file)
    _refused(k, ann, "cat", k.course / "gradebook.db")
    _refused(k, ann, "ls", k.course / "instructor")
    _refused(k, ann, "cat", k.course / "instructor" / "hw02_evil_twins" / "key.txt")
    _refused(k, ann, "ls", k.course / "solutions")
    _refused(k, ann, "cat", k.course / "solutions" / HW01 / f"{HW01}.ipynb")
    _refused(k, ann, "cat", k.home(k.bob) / HW01 / f"{HW01}.ipynb")  # bob's fetched copy
    exchange_course = k.exchange / "noisy-labels"
    _refused(k, ann, "mv", exchange_course, k.exchange / "hijacked")
    _refused(k, ann, "rm", "-rf", exchange_course)
    _refused(k, ann, "ls", exchange_course / "inbound")
    _refused(k, ann, "mkdir", exchange_course / "outbound" / "hw99_fake")
    _refused(k, ann, "sh", "-c", f"echo x > '{exchange_course / 'feedback' / 'fake.html'}'")
    _refused(k, ann, "mkdir", exchange_course, errors=("File exists",))
    # even knowing the name of bob's submission in inbound, she cannot rename or delete it (sticky inbound)
    bob_inbound = next(p for p in (exchange_course / "inbound").iterdir() if p.name.startswith(k.bob + "+"))
    _refused(k, ann, "mv", bob_inbound, exchange_course / "inbound" / f"{ann}+{HW01}+2000-01-01 00:00:00 UTC+x")
    _refused(k, ann, "rm", "-rf", bob_inbound)
    assert bob_inbound.is_dir() and (bob_inbound / f"{HW01}.ipynb").is_file()
    inbound = bob_inbound.stat()  # nbgrader made it 0777; the system config's ClosedSubmit, 0770 in the grading group
    assert stat.S_IMODE(inbound.st_mode) == 0o770 and grp.getgrgid(inbound.st_gid).gr_name == k.group
    assert bob_file.read_bytes() == bob_text
    assert pwd.getpwuid(exchange_course.stat().st_uid).pw_name == k.instructor
    assert (exchange_course / "outbound" / HW01).is_dir()
    # nbgrader itself still works for her: she lists the released assignment
    assert HW01 in k.ok(ann, "nbgrader", "list")


@pytest.mark.slow
def test_a_grader_reads_the_submissions_and_the_gradebook(klass):
    k = klass
    assert k.answers[k.bob] in k.ok(k.grader, "cat", _submission(k, k.bob))
    k.ok(k.grader, "sh", "-c", f"test -r '{k.course / 'gradebook.db'}' && test -w '{k.course / 'gradebook.db'}'")


@pytest.mark.slow
def test_doctor_reports_a_broken_mode_with_the_command_that_fixes_it(klass):
    k = klass
    submitted = k.course / "submitted"
    submitted.chmod(0o777)
    try:
        broken = k.doctor()
        assert broken.returncode == 1, broken.stdout
        fix = f"sudo chmod -R o-rwx {submitted}"
        assert f"PROBLEM course folder {k.course}: submitted/ closed to others" in broken.stdout, broken.stdout
        assert f"fix: {fix}" in broken.stdout and "checks failed" in broken.stdout
        _run_fix(fix)
        fixed = k.doctor()
        assert fixed.returncode == 0, fixed.stdout
    finally:
        submitted.chmod(0o2770)


@pytest.mark.slow
def test_formgrader_in_the_instructor_lab_shows_a_cli_release_as_released_with_collect(klass, tmp_path):
    """One exchange: released with nbgrader's command line, formgrader (noisylabels lab --instructor,
    run as the instructor account) shows the assignment as released with a Collect button, which works."""
    from lab_server import TOKEN, chromium, free_port

    k = klass
    path = chromium()
    port = free_port()
    personal = k.base / "personal-exchange"  # set, but the system config's exchange wins
    home = k.home(k.instructor)
    cmd = ["runuser", "-u", k.instructor, "--", "env", "-i", f"--chdir={k.course}", f"HOME={home}", f"USER={k.instructor}",
           f"PATH={k.env_bin}:/usr/bin:/bin", f"JUPYTER_CONFIG_PATH={k.config}", f"NOISYLABELS_EXCHANGE={personal}",
           str(k.env_bin / "noisylabels"), "lab", "--instructor", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", "--ServerApp.port_retries=0"]
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer"
                time.sleep(0.5)
        assert f"exchange: {k.exchange} (from {k.config / 'nbgrader_config.py'})" in (tmp_path / "lab.log").read_text()
        import json

        with urllib.request.urlopen(f"{url}/formgrader/api/assignments?token={TOKEN}", timeout=60) as r:
            assignments = {a["name"]: a for a in json.load(r)}
        assert assignments[HW01]["status"] == "released", assignments[HW01]
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/formgrader/manage_assignments?token={TOKEN}")
            row = page.locator("tr", has_text=HW01).first
            row.wait_for(timeout=60_000)
            collect = row.locator("td.collect a .glyphicon-cloud-download")
            collect.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "formgrader_released_with_collect.png"))
            collect.click()
            page.locator(".modal", has_text="collected").first.wait_for(timeout=60_000)
            text = page.inner_text(".modal")
            page.screenshot(path=str(tmp_path / "formgrader_collected.png"))
            browser.close()
        assert "Successfully collected" in text, text
        assert not personal.exists()
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_install_moves_a_hijacked_course_folder_in_the_exchange_aside_and_makes_it_again(klass):
    """Run last (it replaces the exchange's course folder): a student owns it, as if she had made it first."""
    k = klass
    folder = k.exchange / "noisy-labels"
    subprocess.run(["chown", "-R", f"{k.ann}:{k.ann}", str(folder)], check=True)
    assert k.doctor().returncode == 1
    run = k.install()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"WARNING: it belonged to {k.ann}, not {k.instructor}" in run.stdout
    moved = [p for p in k.exchange.iterdir() if p.name.startswith("noisy-labels.hijacked.")]
    assert len(moved) == 1 and stat.S_IMODE(moved[0].stat().st_mode) == 0o700 and moved[0].stat().st_uid == 0
    assert pwd.getpwuid(folder.stat().st_uid).pw_name == k.instructor
    assert k.doctor().returncode == 0
