"""The permissions that keep a class's students apart on a shared server, and their check.

``deploy/install.sh`` sets them up once, as root; ``noisylabels doctor`` (:func:`doctor`)
checks them and prints, for each one that is wrong, the command that fixes it. What must hold
(issue 23):

- **the course folder** belongs to the instructor and the grading group, mode 2770 (setgid:
  what graders create stays in the group), closed to students; inside it the grading outputs
  (``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db``, the grade files),
  ``instructor/`` and ``solutions/`` carry no permission for others either (a second wall, should
  the folder ever be opened), and nothing belongs to root (the instructor could not regrade it);
- **the exchange root** is 1777, owned by root: every account drops files in it, and the
  sticky bit stops anyone renaming or deleting an entry that is not theirs; **the course's
  folder in it** is pre-created by the instructor, with nbgrader 0.9.6's own modes
  (``nbgrader/exchange/default/release_assignment.py``, ``release_feedback.py``): the folder
  and ``outbound/`` 0755, ``inbound/`` 2733 plus the sticky bit (students drop submissions in
  and cannot list or rename them), ``feedback/`` 0711;
- **home folders** of the class's accounts 0700 (a fetched homework is in there);
- **the course environment** readable and runnable by every account, its kernel registered
  system-wide;
- **a system nbgrader_config** that gives every account the course id and that exchange.

Only the standard library is imported at module level: ``deploy/install.sh`` runs
``python3 -m autograder.permissions roster FILE`` from the checkout before any environment exists.
"""

from __future__ import annotations

import csv
import fnmatch
import grp
import json
import os
import pwd
import re
import shlex
import sqlite3
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COURSE_ID", "Check", "close_to_others", "class_accounts", "check_course", "check_exchange",
    "check_homes", "check_environment", "check_system_config", "doctor", "read_roster",
]

COURSE_ID = "noisy-labels"
GROUP = "graders"
COURSE_MODE = 0o2770
EXCHANGE_ROOT_MODE = 0o1777
# The course's folder in the exchange: nbgrader's modes, with the sticky bit added to inbound.
EXCHANGE_COURSE_MODES = {".": 0o755, "outbound": 0o755, "inbound": 0o3733, "feedback": 0o711}
# In the course folder: never readable by students.
CLOSED_NAMES = ("submitted", "autograded", "feedback", "instructor", "solutions", "gradebook.db")
CLOSED_PATTERNS = ("gradebook.db-journal", "*grades*.csv", "*.csv.log", "*.csv.bad", "*_similarity.*",
                   "refused_submissions.log", ".nbgrader.log", "nbgrader_*.log")
ROLES = ("student", "grader", "instructor")
CLOSED_SUBMIT = "autograder.nbgrader_plugins.exchange_modes.ClosedSubmit"
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SYSTEM_CONFIG_DIR = "/etc/jupyter"


@dataclass
class Check:
    """One permission checked: ``problem`` is empty when it holds; ``fix`` is a shell command."""

    what: str
    problem: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def _q(path) -> str:
    return shlex.quote(str(path))


def _mode(st: os.stat_result) -> str:
    return oct(stat.S_IMODE(st.st_mode))[2:].zfill(4)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _walk(top: Path):
    """``top`` and everything under it, links not followed: (path, lstat)."""
    st = os.lstat(top)
    yield top, st
    if stat.S_ISDIR(st.st_mode):
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                path = Path(folder, name)
                try:
                    yield path, os.lstat(path)
                except FileNotFoundError:
                    continue


def close_to_others(top) -> int:
    """Remove every permission of "others" under ``top`` (links not followed); how many changed."""
    changed = 0
    for path, st in _walk(Path(top)):
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o007:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o007)
            changed += 1
    return changed


# ------------------------------------------------------------------------------------------ roster
def read_roster(path) -> list[dict]:
    """The roster CSV (``username,role,first_name,last_name``), checked; a clear error otherwise."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no accounts (expected a header username,role,first_name,last_name)")
    missing = {"username", "role"} - set(rows[0])
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} "
                         "(expected username,role,first_name,last_name)")
    seen, accounts = set(), []
    for line, row in enumerate(rows, start=2):
        name, role = (row.get("username") or "").strip(), (row.get("role") or "").strip().lower()
        if not USERNAME.match(name):
            raise ValueError(f"{path}, line {line}: {name!r} is not a valid account name "
                             "(lower-case letters, digits, _ and -, at most 32)")
        if role not in ROLES:
            raise ValueError(f"{path}, line {line}: role {role!r} for {name} is not one of {', '.join(ROLES)}")
        if name in seen:
            raise ValueError(f"{path}, line {line}: {name} is listed twice")
        seen.add(name)
        names = {k: (row.get(k) or "").strip() for k in ("first_name", "last_name")}
        for key, value in names.items():
            if any(ch in value for ch in "\t\n\r:,"):
                raise ValueError(f"{path}, line {line}: {key} of {name} holds a tab, colon, comma or line break")
        accounts.append({"username": name, "role": role, **names})
    return accounts


def class_accounts(course, group: str = GROUP, roster=None) -> dict[str, Path]:
    """Accounts of the class and their home folders: the course folder's owner, the grading
    group's members, the gradebook's students and the roster's accounts (those that exist)."""
    names: list[str] = []
    course = Path(course)
    if course.exists():
        names.append(_user(course.stat().st_uid))
    try:
        names += grp.getgrnam(group).gr_mem
    except KeyError:
        pass
    gradebook = course / "gradebook.db"
    if gradebook.is_file() and os.access(gradebook, os.R_OK):
        try:
            with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as db:
                names += [row[0] for row in db.execute("SELECT id FROM student")]
        except sqlite3.Error:
            pass
    if roster:
        names += [a["username"] for a in read_roster(roster)]
    accounts = {}
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0 and name not in accounts:
            accounts[name] = Path(entry.pw_dir)
    return accounts


# ------------------------------------------------------------------------------------------ course folder
def check_course(course, group: str = GROUP, instructor: str | None = None) -> list[Check]:
    """The course folder closed to students, its grading outputs closed, nothing owned by root."""
    course = Path(course)
    what = f"course folder {course}"
    if not course.is_dir() or course.is_symlink():
        return [Check(what, f"{course} is not a folder",
                      f"sudo bash deploy/install.sh --instructor {instructor or 'USER'} --course {_q(course)}")]
    st = course.stat()
    owner, owner_group = _user(st.st_uid), _group(st.st_gid)
    instructor = instructor or (owner if st.st_uid else "INSTRUCTOR")
    checks = []
    chown = f"sudo chown -R {instructor}:{group} {_q(course)}"
    if st.st_uid == 0:
        checks.append(Check(f"{what}: owner", "belongs to root: the instructor must grade as their own account", chown))
    elif owner != instructor:
        checks.append(Check(f"{what}: owner", f"belongs to {owner}, not the instructor {instructor}", chown))
    else:
        checks.append(Check(f"{what}: owner"))
    checks.append(Check(f"{what}: group", "" if owner_group == group else
                        f"group is {owner_group}, not the grading group {group}", f"sudo chgrp -R {group} {_q(course)}"))
    mode = stat.S_IMODE(st.st_mode)
    problem = ""
    if mode & 0o007:
        problem = f"mode {_mode(st)}: open to every account (students)"
    elif mode != COURSE_MODE:
        problem = f"mode {_mode(st)}, not {COURSE_MODE:04o} (group rwx, setgid so graders' files stay in the group)"
    checks.append(Check(f"{what}: mode", problem, f"sudo chmod {COURSE_MODE:04o} {_q(course)}"))

    tops = [course / name for name in CLOSED_NAMES if (course / name).exists() or (course / name).is_symlink()]
    tops += sorted(p for p in course.iterdir() if not p.is_dir() and p not in tops
                   and any(fnmatch.fnmatch(p.name, pat) for pat in CLOSED_PATTERNS))
    for top in tops:
        name = top.name + ("/" if top.is_dir() else "")
        open_paths = [(p, s) for p, s in _walk(top) if not stat.S_ISLNK(s.st_mode) and s.st_mode & 0o007]
        problem = ""
        if open_paths:
            p, s = open_paths[0]
            problem = (f"{len(open_paths)} path(s) readable or writable by others, e.g. "
                       f"{p.relative_to(course)} (mode {_mode(s)})")
        checks.append(Check(f"{what}: {name} closed to others", problem, f"sudo chmod -R o-rwx {_q(top)}"))

    gradebook = course / "gradebook.db"
    if gradebook.is_file():
        g = gradebook.stat()
        checks.append(Check(f"{what}: gradebook.db read-write for the grading group", "" if g.st_mode & 0o060 == 0o060
                            else f"mode {_mode(g)}: graders cannot record grades", f"sudo chmod 0660 {_q(gradebook)}"))

    root_owned = [p for p, s in _walk(course) if s.st_uid == 0]
    checks.append(Check(
        f"{what}: nothing owned by root",
        f"{len(root_owned)} path(s) belong to root (the instructor cannot change, delete or regrade them), "
        f"e.g. {root_owned[0].relative_to(course) if root_owned[0] != course else '.'}" if root_owned and st.st_uid else "",
        chown))
    return checks


# ------------------------------------------------------------------------------------------ exchange
def _make_exchange_course(folder: Path, instructor: str, group: str) -> str:
    return " && ".join(
        f"sudo install -d -o {instructor} -g {group} -m {EXCHANGE_COURSE_MODES[sub]:04o} "
        f"{_q(folder if sub == '.' else folder / sub)}"
        for sub in (".", "outbound", "inbound", "feedback"))


def check_exchange(exchange, instructor: str, group: str = GROUP, course_id: str = COURSE_ID) -> list[Check]:
    """The exchange root sticky and root's; the course's folder in it the instructor's, nbgrader's modes."""
    exchange = Path(exchange)
    what = f"exchange {exchange}"
    if not exchange.is_dir() or exchange.is_symlink():
        return [Check(what, "missing (nbgrader would create it 0777 without the sticky bit: hijackable)",
                      f"sudo install -d -o root -g root -m 1777 {_q(exchange)}")]
    st = exchange.stat()
    checks = [
        Check(f"{what}: owner", "" if st.st_uid == 0 else
              f"belongs to {_user(st.st_uid)}, who can change its mode", f"sudo chown root:root {_q(exchange)}"),
        Check(f"{what}: mode", "" if stat.S_IMODE(st.st_mode) == EXCHANGE_ROOT_MODE else
              f"mode {_mode(st)}, not 1777 (sticky: no account renames or deletes another's entry)",
              f"sudo chmod 1777 {_q(exchange)}"),
    ]
    folder = exchange / course_id
    what = f"course folder {folder}"
    if not folder.exists() and not folder.is_symlink():
        checks.append(Check(what, "missing: the first account to create it owns the course's exchange",
                            _make_exchange_course(folder, instructor, group)))
        return checks
    for sub, mode in EXCHANGE_COURSE_MODES.items():
        path = folder if sub == "." else folder / sub
        name = what if sub == "." else f"{what}: {sub}/"
        if path.is_symlink() or not path.is_dir():
            checks.append(Check(name, "a link or not a folder" if path.exists() or path.is_symlink() else "missing",
                                f"sudo mv {_q(path)} {_q(str(path) + '.suspect')} && "
                                f"sudo install -d -o {instructor} -g {group} -m {mode:04o} {_q(path)}"))
            continue
        s = path.stat()
        if _user(s.st_uid) != instructor:
            fix = (f"sudo mv {_q(folder)} {_q(str(folder) + '.hijacked')} && " + _make_exchange_course(folder, instructor, group)
                   if sub == "." else f"sudo chown {instructor}:{group} {_q(path)}")
            checks.append(Check(f"{name}: owner", f"belongs to {_user(s.st_uid)}, not the instructor {instructor}", fix))
        else:
            checks.append(Check(f"{name}: owner"))
        problem = ""
        if stat.S_IMODE(s.st_mode) != mode:
            problem = f"mode {_mode(s)}, not {mode:04o}"
            if sub == "inbound" and s.st_mode & stat.S_IROTH:
                problem += ": every account can list the submissions"
        checks.append(Check(f"{name}: mode", problem, f"sudo chmod {mode:04o} {_q(path)}"))
        if sub == "inbound":
            checks.append(Check(f"{name}: group", "" if _group(s.st_gid) == group else
                                f"group is {_group(s.st_gid)}, not {group}: submissions get this group",
                                f"sudo chgrp {group} {_q(path)}"))
            try:
                entries = [e for e in os.scandir(path) if e.stat(follow_symlinks=False).st_mode & 0o007]
            except PermissionError:  # only root and the instructor can list it
                continue
            checks.append(Check(f"{name}: submissions closed to other students", "" if not entries else
                                f"{len(entries)} submission folder(s) open to others (nbgrader's 0777), "
                                f"e.g. {entries[0].name}",
                                f"sudo find {_q(path)} -mindepth 1 -maxdepth 1 -exec chmod o-rwx {{}} +"))
    return checks


# ------------------------------------------------------------------------------------------ homes
def check_homes(accounts: dict[str, Path]) -> list[Check]:
    """Each account's home folder closed to everyone else (0700)."""
    checks = []
    for name, home in sorted(accounts.items()):
        try:
            st = os.stat(home)
        except FileNotFoundError:
            checks.append(Check(f"home folder of {name}", f"{home} does not exist",
                                f"sudo mkhomedir_helper {name} 0077"))
            continue
        checks.append(Check(f"home folder of {name}", "" if not st.st_mode & 0o077 else
                            f"{home} is mode {_mode(st)}: other accounts can read their fetched homework",
                            f"sudo chmod 0700 {_q(home)}"))
    return checks


# ------------------------------------------------------------------------------------------ environment
def _closed_ancestor(path: Path) -> Path | None:
    """The first folder above ``path`` that others cannot enter, or ``None``."""
    for folder in reversed(path.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def check_environment(prefix=None, executable=None, kernel: str = "noisylabels") -> list[Check]:
    """The course environment readable and runnable by every account; its kernel registered system-wide."""
    prefix = Path(prefix or sys.prefix)
    executable = Path(os.path.realpath(executable or sys.executable))
    install = "sudo bash deploy/install.sh --instructor USER (a venv from /usr/bin/python3 under /opt)"
    checks = []
    closed = _closed_ancestor(executable)
    runnable = executable.stat().st_mode & stat.S_IXOTH
    checks.append(Check(f"environment interpreter {executable}",
                        f"{closed} is closed to other accounts, so they cannot run it" if closed
                        else "" if runnable else "not executable by other accounts", install))
    import importlib.util

    folders = [prefix]
    for module in ("noisylabels", "autograder", "nbgrader"):
        spec = importlib.util.find_spec(module)
        if spec and spec.submodule_search_locations:
            folders += [Path(p) for p in spec.submodule_search_locations]
    for folder in dict.fromkeys(folders):
        closed = _closed_ancestor(folder / "x")
        unreadable = [] if closed else [p for p, s in _walk(folder) if not stat.S_ISLNK(s.st_mode) and (
            not s.st_mode & stat.S_IROTH or (stat.S_ISDIR(s.st_mode) and not s.st_mode & stat.S_IXOTH))]
        problem = (f"{closed} is closed to other accounts" if closed else
                   f"{len(unreadable)} path(s) not readable by other accounts, e.g. {unreadable[0]}" if unreadable else "")
        fix = f"sudo chmod o+rx {_q(closed)}" if closed else f"sudo chmod -R o+rX {_q(folder)}"
        checks.append(Check(f"environment readable: {folder}", problem, fix))

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import jupyter_data_dir

    specs = KernelSpecManager().find_kernel_specs()
    register = (f"sudo {_q(executable)} -m ipykernel install --prefix /usr/local --name {kernel} "
                "--display-name 'Python 3 (Noisy Labels)'")
    where = specs.get(kernel)
    if where is None:
        checks.append(Check(f"kernel {kernel}", "not registered: students' JupyterLab will not offer it", register))
    elif Path(where).resolve().is_relative_to(Path(jupyter_data_dir()).resolve()):
        checks.append(Check(f"kernel {kernel}", f"registered for this account only ({where})", register))
    else:
        import json

        argv0 = Path(json.loads((Path(where) / "kernel.json").read_text())["argv"][0])
        closed = _closed_ancestor(Path(os.path.realpath(argv0)))
        checks.append(Check(f"kernel {kernel} ({where})", f"its interpreter {argv0} sits in {closed}, closed to others"
                            if closed else "", register))
    return checks


# ------------------------------------------------------------------------------------------ system config
def system_config_files(config_dirs=None) -> list[Path]:
    """nbgrader_config files every account reads (highest priority first): those in
    ``config_dirs``, or in the environment's ``etc/jupyter``, ``/usr/local/etc/jupyter``, ``/etc/jupyter``."""
    if config_dirs is None:
        from jupyter_core.paths import ENV_CONFIG_PATH, SYSTEM_CONFIG_PATH

        config_dirs = [*ENV_CONFIG_PATH, *SYSTEM_CONFIG_PATH]
    found = []
    for folder in config_dirs:
        for name in ("nbgrader_config.py", "nbgrader_config.json"):
            if (Path(folder) / name).is_file():
                found.append(Path(folder) / name)
    return found


def system_config_text(exchange, course_id: str = COURSE_ID) -> str:
    """The system nbgrader_config.py that ``deploy/install.sh`` writes."""
    return "".join(line + "\n" for line in _system_config_lines(exchange, course_id))


def _system_config_lines(exchange, course_id: str) -> list[str]:
    return ["# Written by deploy/install.sh: the course id and the one exchange of every account (nbgrader).",
            "c = get_config()  # noqa: F821",
            f"c.CourseDirectory.course_id = {json.dumps(course_id)}",
            f"c.Exchange.root = {json.dumps(str(exchange))}",
            "# a submission's folder in inbound/ 0770 (the student's and the grading group's), not nbgrader's 0777",
            f"c.ExchangeFactory.submit = {json.dumps(CLOSED_SUBMIT)}"]


def check_system_config(exchange, course_id: str = COURSE_ID, config_dirs=None) -> list[Check]:
    """A system nbgrader_config, readable by all and writable by root only, with the course id and exchange."""
    target = Path((config_dirs or [SYSTEM_CONFIG_DIR])[-1]) / "nbgrader_config.py"
    lines = " ".join(_q(line) for line in _system_config_lines(exchange, course_id))
    write = (f"sudo mkdir -p {_q(target.parent)} && printf '%s\\n' {lines} | sudo tee {_q(target)} >/dev/null "
             f"&& sudo chmod 0644 {_q(target)}")
    from noisylabels.lab import nbgrader_setting

    files = system_config_files(config_dirs)
    if not files:
        return [Check("system nbgrader_config.py", "missing: students' nbgrader has no course id "
                      "('No course id specified') and uses nbgrader's default exchange", write)]
    checks = []
    for path in files:
        st = path.stat()
        closed = _closed_ancestor(path)
        problem = (f"{closed} is closed to other accounts" if closed else
                   f"mode {_mode(st)}: other accounts cannot read it" if not st.st_mode & stat.S_IROTH else
                   f"mode {_mode(st)}, owner {_user(st.st_uid)}: an account other than root can change it"
                   if st.st_mode & 0o022 or st.st_uid != 0 else "")
        checks.append(Check(f"system config {path}: readable by all, root's", problem,
                            f"sudo chmod o+x {_q(closed)}" if closed else
                            f"sudo chown root:root {_q(path)} && sudo chmod 0644 {_q(path)}"))
    try:
        values = {key: next((v for v in (nbgrader_setting(p, *key) for p in files) if v), None)
                  for key in (("CourseDirectory", "course_id"), ("Exchange", "root"), ("ExchangeFactory", "submit"))}
    except Exception as err:  # a config file that does not load
        return checks + [Check(f"system config {files[0]}", f"does not load: {err}", write)]
    course = values[("CourseDirectory", "course_id")]
    checks.append(Check("system config: course id", "" if course == course_id else
                        f"course id is {course!r}, not {course_id!r}", write))
    root = values[("Exchange", "root")]
    same = root and os.path.realpath(root) == os.path.realpath(exchange)
    checks.append(Check("system config: exchange", "" if same else
                        f"Exchange.root is {root!r}, not {str(exchange)!r}", write))
    submit = values[("ExchangeFactory", "submit")]
    checks.append(Check("system config: submissions closed to other students", "" if submit == CLOSED_SUBMIT else
                        "nbgrader submit leaves each submission's folder 0777 (another student who learns its "
                        f"name can change it): ExchangeFactory.submit is {submit!r}, not {CLOSED_SUBMIT!r}", write))
    return checks


# ------------------------------------------------------------------------------------------ doctor
def doctor(course, exchange, instructor: str | None = None, group: str = GROUP, roster=None,
           config_dirs=None, course_id: str = COURSE_ID, verbose: bool = False, out=print) -> int:
    """Run every check; print each problem with its fix. 1 if any failed, else 0."""
    course = Path(course)
    owner = instructor or (_user(course.stat().st_uid) if course.exists() else "INSTRUCTOR")
    checks = check_course(course, group=group, instructor=instructor)
    checks += check_exchange(exchange, owner, group=group, course_id=course_id)
    checks += check_homes(class_accounts(course, group=group, roster=roster))
    checks += check_environment()
    checks += check_system_config(exchange, course_id=course_id, config_dirs=config_dirs)
    failed = [c for c in checks if not c.ok]
    for check in checks:
        if not check.ok:
            out(f"PROBLEM {check.what}: {check.problem}\n  fix: {check.fix}")
        elif verbose:
            out(f"ok      {check.what}")
    if failed:
        out(f"{len(failed)} of {len(checks)} checks failed")
        return 1
    out(f"all {len(checks)} checks passed")
    return 0


def _main(argv=None) -> int:
    """``python -m autograder.permissions roster FILE``: the roster checked, one tab-separated line an account."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "roster":
        print("usage: python -m autograder.permissions roster FILE", file=sys.stderr)
        return 2
    try:
        accounts = read_roster(argv[1])
    except (OSError, ValueError, csv.Error) as err:
        print(f"roster: {err}", file=sys.stderr)
        return 1
    for a in accounts:
        print("\t".join((a["username"], a["role"], a["first_name"], a["last_name"])))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
