"""JupyterHub for a Noisy Labels class on one Linux server (``noisylabels hub`` runs it; README,
"A class on JupyterHub").

- **Accounts**: real unix accounts (``deploy/install.sh`` creates the roster's), logging in with
  their unix passwords (PAM). On a server whose accounts have no passwords, set
  ``NOISYLABELS_HUB_AUTHENTICATOR=native`` (``pip install jupyterhub-nativeauthenticator``):
  each account of the roster signs up at ``/hub/signup`` with its unix name and a password, and
  an instructor authorizes it at ``/hub/authorize``. Only the roster's accounts (and the
  instructor) may log in; instructors are the hub's admins.
- **Servers**: each account's JupyterLab runs as that account (LocalProcessSpawner) from the
  course environment, in its home folder, with the course kernel. Students get nbgrader's
  Assignment List (fetch, submit, fetch feedback) and Validate; Formgrader, Create Assignment
  and the Course List are off (``deploy/jupyter/student``: the lab plugins in a page_config.json,
  the server extensions in a jupyter_server_config.json). The lessons are copied into
  ``~/lessons`` at the first start (by the account itself; the checkout's stay read-only).
- **Grading**: formgrader runs as a Hub-managed service (nbgrader's "one class, one grader"
  set-up): a Jupyter server as the instructor account in the course folder, reached at
  ``/services/formgrader/`` by the members of the grading group (the roster's graders and
  instructors; JupyterHub role ``access:services!service=formgrader``), nobody else.
- Every server reads the system ``nbgrader_config.py`` (course id and the one exchange) and
  sends the course's Content-Security-Policy (``jupyter/common``). On a machine with up to 4
  cores each kernel runs one PyTorch/BLAS thread (``noisylabels.lab.default_threads``).

Settings come from ``NOISYLABELS_HUB_*`` environment variables (``noisylabels hub`` sets them
from its options); the defaults are ``deploy/install.sh``'s. ``NOISYLABELS_HUB_ROSTER`` is required.
"""

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

from autograder.permissions import read_roster
from noisylabels.lab import THREAD_VARIABLES, default_threads

c = get_config()  # noqa: F821 (provided by JupyterHub)

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"NOISYLABELS_HUB_{name}", default)
    if value is None:
        sys.exit(f"jupyterhub_config.py: set NOISYLABELS_HUB_{name} (noisylabels hub sets it from its options)")
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ROSTER = read_roster(setting("ROSTER"))
ENV_BIN = Path(setting("ENV_BIN", str(Path(sys.executable).parent)))
COURSE = Path(setting("COURSE", "/srv/noisy-labels/course"))
CONFIG_DIR = Path(setting("CONFIG_DIR", "/etc/jupyter"))  # the system nbgrader_config.py
KERNEL_PREFIX = Path(setting("KERNEL_PREFIX", "/usr/local"))
STATE = Path(setting("STATE", "/srv/noisy-labels/hub"))
GROUP = setting("GROUP", "graders")
LESSONS = Path(setting("LESSONS", str(REPO / "lessons")))
SERVICE = "formgrader"

by_role = {role: [a["username"] for a in ROSTER if a["role"] == role] for role in ("student", "grader", "instructor")}
INSTRUCTOR = setting("INSTRUCTOR", (by_role["instructor"] or [None])[0])
try:
    INSTRUCTOR_HOME = pwd.getpwnam(INSTRUCTOR).pw_dir
except KeyError:
    sys.exit(f"jupyterhub_config.py: the instructor account {INSTRUCTOR} does not exist (run deploy/install.sh)")
instructors = sorted({INSTRUCTOR, *by_role["instructor"]})
graders = sorted({*instructors, *by_role["grader"]})

# ------------------------------------------------------------------ the hub itself
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
if os.environ.get("NOISYLABELS_HUB_PROXY"):
    c.ConfigurableHTTPProxy.command = [os.environ["NOISYLABELS_HUB_PROXY"]]
# Internal ports (the hub's API, the proxy's API): free ones, so that a trial hub never collides
# with another Jupyter on the machine. The public address is --JupyterHub.bind_url (noisylabels hub --ip/--port).
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{free_port()}"
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every server it started

# ------------------------------------------------------------------ who logs in
if setting("AUTHENTICATOR", "pam") == "native":
    c.JupyterHub.authenticator_class = "native"
    c.NativeAuthenticator.open_signup = False  # an admin authorizes each sign-up at /hub/authorize
else:
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.open_sessions = False  # no PAM session (no systemd-logind here, nothing to open)
c.Authenticator.allowed_users = {a["username"] for a in ROSTER} | set(instructors)
c.Authenticator.admin_users = set(instructors)
c.Authenticator.allow_existing_users = False  # a row removed from the roster no longer logs in

# ------------------------------------------------------------------ every account's own server
settings = REPO / "jupyter"  # the course's Jupyter settings (noisylabels lab uses them too)
path = os.pathsep.join([str(ENV_BIN), "/usr/local/bin", "/usr/bin", "/bin"])
threads = default_threads()
thread_env = {name: str(threads) for name in THREAD_VARIABLES} if threads else {}
jupyter_path = os.pathsep.join([str(settings / "share"), str(KERNEL_PREFIX / "share" / "jupyter")])


def config_path(mode: str) -> str:
    """``deploy/jupyter/<mode>``, the Content-Security-Policy, the system nbgrader_config.py."""
    return os.pathsep.join([str(DEPLOY / "jupyter" / mode), str(settings / "common"), str(CONFIG_DIR)])


c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(ENV_BIN / "jupyterhub-singleuser")]
c.Spawner.args = ["--MappingKernelManager.default_kernel_name=noisylabels"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.environment = {"PATH": path, "JUPYTER_CONFIG_PATH": config_path("student"), "JUPYTER_PATH": jupyter_path,
                         **thread_env}
# NOISYLABELS_SIZE (quick / default / full) reaches the notebooks when the hub was started with it.
c.Spawner.env_keep = ["LANG", "LC_ALL", "NOISYLABELS_SIZE"]
c.Spawner.start_timeout = 180  # a busy 2-core machine starts a server in about 20 s
c.Spawner.http_timeout = 120


def copy_lessons(spawner) -> None:
    """At an account's first start, its own copy of the lessons in ``~/lessons`` (made as that account)."""
    account = pwd.getpwnam(spawner.user.name)
    target = Path(account.pw_dir) / "lessons"
    if os.path.lexists(target) or not LESSONS.is_dir():
        return
    subprocess.run(["cp", "-R", "--no-preserve=mode,ownership,timestamps", str(LESSONS), str(target)],
                   user=account.pw_uid, group=account.pw_gid, extra_groups=[], umask=0o077,
                   env={"PATH": "/usr/bin:/bin", "HOME": account.pw_dir}, cwd=account.pw_dir,
                   timeout=120, check=False, capture_output=True)


c.Spawner.pre_spawn_hook = copy_lessons

# ------------------------------------------------------------------ formgrader, as the instructor, for the graders
c.JupyterHub.load_groups = {GROUP: {"users": graders}}
c.JupyterHub.services = [{
    "name": SERVICE,
    "url": f"http://127.0.0.1:{free_port()}",
    "command": [str(ENV_BIN / "jupyterhub-singleuser"), f"--ServerApp.root_dir={COURSE}",
                "--MappingKernelManager.default_kernel_name=noisylabels"],
    "user": INSTRUCTOR,
    "cwd": str(COURSE),
    "environment": {"PATH": path, "HOME": INSTRUCTOR_HOME, "JUPYTER_CONFIG_PATH": config_path("grader"),
                    "JUPYTER_PATH": jupyter_path, "JUPYTERHUB_DEFAULT_URL": "/formgrader", **thread_env},
    "oauth_no_confirm": True,
}]
c.JupyterHub.load_roles = [
    {
        "name": "course-graders",
        "description": f"open formgrader (the {SERVICE} service)",
        "groups": [GROUP],
        "scopes": [f"access:services!service={SERVICE}", f"read:services!service={SERVICE}", "list:services"],
    },
]
