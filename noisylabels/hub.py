"""``noisylabels hub``: a class on one machine, on JupyterHub (``deploy/jupyterhub_config.py``).

One command starts a trial class (or a real one on a single server): it checks the set-up that
``deploy/install.sh`` makes (the accounts of the roster, the course environment, the course
folder, the exchange, the system ``nbgrader_config.py``) and runs ``install.sh`` when any of it
is missing; it installs npm's ``configurable-http-proxy`` (JupyterHub's proxy) into the hub's
state folder when it is not on ``PATH``; then it runs ``jupyterhub -f deploy/jupyterhub_config.py``
from the course environment, in the foreground (Ctrl+C stops the hub and every server it started).

The hub's settings reach ``deploy/jupyterhub_config.py`` as ``NOISYLABELS_HUB_*`` environment
variables (:meth:`HubSetup.environment`); without them the config file uses install.sh's defaults,
so ``sudo NOISYLABELS_HUB_ROSTER=roster.csv /opt/noisylabels/bin/jupyterhub -f deploy/jupyterhub_config.py``
is the same hub.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HubSetup", "install_proxy", "find_proxy", "hub_command", "main", "roster_roles", "setup_problems"]

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CONFIG_FILE = DEPLOY / "jupyterhub_config.py"
INSTALL_SCRIPT = DEPLOY / "install.sh"
COURSE_ID = "noisy-labels"
PROXY_PACKAGE = "configurable-http-proxy"
# install.sh's defaults, and the hub's own state folder (its database, cookie secret, the proxy).
DEFAULTS = dict(prefix="/opt/noisylabels", course="/srv/noisy-labels/course", exchange="/srv/nbgrader/exchange",
                config_dir="/etc/jupyter", kernel_prefix="/usr/local", state_dir="/srv/noisy-labels/hub",
                group="graders")


def roster_roles(roster) -> dict[str, list[str]]:
    """The roster's accounts by role: ``{"student": [...], "grader": [...], "instructor": [...]}``."""
    from autograder.permissions import ROLES, read_roster

    roles = {role: [] for role in ROLES}
    for account in read_roster(roster):
        roles[account["role"]].append(account["username"])
    return roles


@dataclass
class HubSetup:
    """Where a class's pieces are (``install.sh``'s options) and where the hub listens."""

    roster: Path
    instructor: str
    prefix: Path = Path(DEFAULTS["prefix"])
    env_bin: Path | None = None  # default: the environment install.sh makes, prefix/bin
    course: Path = Path(DEFAULTS["course"])
    exchange: Path = Path(DEFAULTS["exchange"])
    config_dir: Path = Path(DEFAULTS["config_dir"])
    kernel_prefix: Path = Path(DEFAULTS["kernel_prefix"])
    state_dir: Path = Path(DEFAULTS["state_dir"])
    group: str = DEFAULTS["group"]
    ip: str = "127.0.0.1"
    port: int = 8000
    extra_env: dict = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return Path(self.env_bin) if self.env_bin else Path(self.prefix) / "bin"

    def install_command(self) -> list[str]:
        """``deploy/install.sh`` with this set-up's options."""
        cmd = ["bash", str(INSTALL_SCRIPT), "--instructor", self.instructor, "--roster", str(self.roster),
               "--course", str(self.course), "--exchange", str(self.exchange), "--config-dir", str(self.config_dir),
               "--kernel-prefix", str(self.kernel_prefix), "--group", self.group]
        return cmd + (["--env-bin", str(self.env_bin)] if self.env_bin else ["--prefix", str(self.prefix)])

    def environment(self, proxy: Path | None = None) -> dict[str, str]:
        """The ``NOISYLABELS_HUB_*`` variables ``deploy/jupyterhub_config.py`` reads."""
        env = {"NOISYLABELS_HUB_ROSTER": str(Path(self.roster).resolve()), "NOISYLABELS_HUB_INSTRUCTOR": self.instructor,
               "NOISYLABELS_HUB_ENV_BIN": str(self.bin), "NOISYLABELS_HUB_COURSE": str(self.course),
               "NOISYLABELS_HUB_CONFIG_DIR": str(self.config_dir),
               "NOISYLABELS_HUB_KERNEL_PREFIX": str(self.kernel_prefix),
               "NOISYLABELS_HUB_STATE": str(self.state_dir), "NOISYLABELS_HUB_GROUP": self.group}
        if proxy:
            env["NOISYLABELS_HUB_PROXY"] = str(proxy)
        return env


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def setup_problems(setup: HubSetup) -> list[str]:
    """What ``install.sh`` has not set up yet (an empty list: the class is ready)."""
    problems = []
    for name in dict.fromkeys([setup.instructor, *sum(roster_roles(setup.roster).values(), [])]):
        if not _account_exists(name):
            problems.append(f"no unix account {name}")
    for tool in ("python", "jupyterhub", "jupyterhub-singleuser"):
        if not (setup.bin / tool).exists():
            problems.append(f"the course environment has no {setup.bin / tool}")
    checks = [(setup.course / "nbgrader_config.py", "the course folder"),
              (setup.config_dir / "nbgrader_config.py", "the system nbgrader configuration"),
              (setup.exchange / COURSE_ID / "inbound", "the course's folder in the exchange"),
              (setup.kernel_prefix / "share/jupyter/kernels/noisylabels/kernel.json", "the course kernel")]
    problems += [f"{what} is missing ({path})" for path, what in checks if not path.exists()]
    return problems


def find_proxy(state_dir: Path) -> Path | None:
    """npm's ``configurable-http-proxy``: on ``PATH``, or installed in the hub's state folder."""
    local = Path(state_dir) / "node_modules" / ".bin" / PROXY_PACKAGE
    if local.exists():
        return local
    found = shutil.which(PROXY_PACKAGE)
    return Path(found) if found else None


def install_proxy(state_dir: Path) -> Path:
    """``npm install --prefix STATE configurable-http-proxy`` (needs Node.js and npm)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("JupyterHub's proxy needs Node.js and npm: apt-get install -y nodejs npm "
                           f"(or npm install -g {PROXY_PACKAGE})")
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    print(f"installing {PROXY_PACKAGE} into {state_dir} (npm)", file=sys.stderr, flush=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(state_dir), PROXY_PACKAGE], check=True)
    proxy = find_proxy(state_dir)
    if proxy is None:
        raise RuntimeError(f"npm install did not leave {PROXY_PACKAGE} in {state_dir}/node_modules/.bin")
    return proxy


def hub_command(setup: HubSetup, proxy: Path | None = None, extra=()) -> tuple[list[str], dict]:
    """The ``jupyterhub`` command line and its environment."""
    jupyterhub = setup.bin / "jupyterhub"
    if not jupyterhub.exists():  # the environment predates the hub extra: this interpreter's
        jupyterhub = Path(sys.executable).with_name("jupyterhub")
    env = dict(os.environ, **setup.extra_env, **setup.environment(proxy))
    cmd = [str(jupyterhub), "-f", str(CONFIG_FILE), f"--JupyterHub.bind_url=http://{setup.ip}:{setup.port}/", *extra]
    return cmd, env


def main(setup: HubSetup, install: bool = True, print_only: bool = False, extra=()) -> int:
    """Set up what is missing, then run JupyterHub in the foreground (replaces this process)."""
    problems = setup_problems(setup)
    if problems and print_only:
        print("missing (install.sh would set it up): " + "; ".join(problems), file=sys.stderr)
        print(" ".join(setup.install_command()))
    elif problems:
        if not install:
            print("the class is not set up:\n  " + "\n  ".join(problems)
                  + "\nrun: sudo " + " ".join(setup.install_command()), file=sys.stderr)
            return 1
        print("setting up the class (deploy/install.sh): " + "; ".join(problems), file=sys.stderr, flush=True)
        done = subprocess.run(setup.install_command())
        if done.returncode != 0:
            print(f"install.sh failed (exit {done.returncode}); the hub was not started", file=sys.stderr)
            return done.returncode
        left = setup_problems(setup)
        if left:
            print("still missing after install.sh: " + "; ".join(left), file=sys.stderr)
            return 1
    proxy = find_proxy(setup.state_dir)
    if proxy is None and not print_only:
        proxy = install_proxy(setup.state_dir)
    cmd, env = hub_command(setup, proxy, extra)
    if print_only:
        print(" ".join(f"{k}={v}" for k, v in setup.environment(proxy).items()) + " " + " ".join(cmd))
        return 0
    Path(setup.state_dir).mkdir(parents=True, exist_ok=True)
    os.chmod(setup.state_dir, 0o700)  # the hub's database and cookie secret
    print(f"starting JupyterHub on http://{setup.ip}:{setup.port}/ (the class's accounts log in there)",
          file=sys.stderr, flush=True)
    os.chdir(setup.state_dir)
    os.execve(cmd[0], cmd, env)  # JupyterHub takes this process: Ctrl+C, signals, exit code


def setup_from_args(args) -> HubSetup:
    """A :class:`HubSetup` from ``noisylabels hub``'s options (the instructor: ``--instructor`` or the roster's)."""
    roster = Path(args.roster)
    if not roster.is_file():
        raise ValueError(f"--roster: no such file: {roster}")
    instructors = roster_roles(roster)["instructor"]  # also checks the roster (a ValueError says what is wrong)
    instructor = args.instructor
    if not instructor:
        if not instructors:
            raise ValueError(f"{roster} names no instructor: add a row with role instructor, or pass --instructor USER")
        instructor = instructors[0]
    values = {k: Path(getattr(args, k)) for k in ("prefix", "course", "exchange", "config_dir", "kernel_prefix", "state_dir")}
    for name, value in values.items():
        if not value.is_absolute():
            raise ValueError(f"--{name.replace('_', '-')} must be an absolute path (got {value})")
    return HubSetup(roster=roster, instructor=instructor, env_bin=Path(args.env_bin) if args.env_bin else None,
                    group=args.group, ip=args.ip, port=args.port, **values)


def add_arguments(parser) -> None:
    """``noisylabels hub``'s options (install.sh's, plus where the hub listens)."""
    parser.add_argument("--roster", required=True, help="CSV username,role,first_name,last_name (role: student|grader|instructor)")
    parser.add_argument("--instructor", help="the account that owns the course and runs formgrader (default: the roster's first instructor)")
    parser.add_argument("--port", type=int, default=8000, help="the hub's port (default 8000)")
    parser.add_argument("--ip", default="127.0.0.1", help="the address it listens on (default 127.0.0.1; 0.0.0.0 for a class network)")
    parser.add_argument("--prefix", default=DEFAULTS["prefix"], help=f"the course environment (default {DEFAULTS['prefix']})")
    parser.add_argument("--env-bin", help="use this existing environment's bin/ instead")
    parser.add_argument("--course", default=DEFAULTS["course"], help=f"the course folder (default {DEFAULTS['course']})")
    parser.add_argument("--exchange", default=DEFAULTS["exchange"], help=f"nbgrader's exchange (default {DEFAULTS['exchange']})")
    parser.add_argument("--config-dir", default=DEFAULTS["config_dir"], help=f"the system nbgrader_config.py's folder (default {DEFAULTS['config_dir']})")
    parser.add_argument("--kernel-prefix", default=DEFAULTS["kernel_prefix"], help=f"where the kernel is registered (default {DEFAULTS['kernel_prefix']})")
    parser.add_argument("--group", default=DEFAULTS["group"], help=f"the grading group (default {DEFAULTS['group']})")
    parser.add_argument("--state-dir", default=DEFAULTS["state_dir"], help=f"the hub's database, cookie secret and proxy (default {DEFAULTS['state_dir']})")
    parser.add_argument("--no-install", action="store_true", help="never run install.sh: stop if the set-up is incomplete")
    parser.add_argument("--print-command", action="store_true", help="print what would run, change nothing")


def run(args) -> int:
    """The ``noisylabels hub`` subcommand."""
    if os.name != "posix" or (os.geteuid() != 0 and not args.print_command):
        print("noisylabels hub runs as root (JupyterHub starts each account's server as that account; "
              "install.sh creates accounts): sudo noisylabels hub ...", file=sys.stderr)
        return 1
    try:
        setup = setup_from_args(args)
    except ValueError as err:
        print(f"noisylabels hub: {err}", file=sys.stderr)
        return 2
    return main(setup, install=not args.no_install, print_only=args.print_command, extra=args.jupyter_args)
