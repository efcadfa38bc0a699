"""``noisylabels hub`` and ``deploy/jupyterhub_config.py`` without starting anything (quick);
tests/test_class_hub.py runs the real hub."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

from traitlets.config.loader import PyFileConfigLoader

from noisylabels import cli
from noisylabels.hub import HubSetup, setup_problems

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _roster(tmp_path, rows: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text("username,role,first_name,last_name\n" + rows)
    return path


def _hub(*args):
    """``noisylabels hub ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["hub", *args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def _load_config(tmp_path, roster: Path, **settings):
    env = {f"NOISYLABELS_HUB_{k.upper()}": str(v) for k, v in settings.items()}
    env["NOISYLABELS_HUB_ROSTER"] = str(roster)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return PyFileConfigLoader("jupyterhub_config.py", path=str(DEPLOY)).load_config()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_hub_config_lets_in_only_the_roster_with_instructors_as_admins_and_graders_in_the_group(tmp_path):
    roster = _roster(tmp_path, "root,instructor,Ada,T\nta1,grader,Tim,A\nalice,student,Alice,A\nbob,student,Bob,B\n")
    c = _load_config(tmp_path, roster, course=tmp_path / "course", config_dir=tmp_path / "etc",
                     env_bin="/opt/env/bin", state=tmp_path / "state", group="graders")
    assert c.Authenticator.allowed_users == {"root", "ta1", "alice", "bob"}
    assert c.Authenticator.admin_users == {"root"}
    assert c.Authenticator.allow_existing_users is False
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.JupyterHub.load_groups == {"graders": {"users": ["root", "ta1"]}}
    (service,) = c.JupyterHub.services
    assert service["user"] == "root" and service["cwd"] == str(tmp_path / "course")
    assert service["command"][0] == "/opt/env/bin/jupyterhub-singleuser"
    assert service["environment"]["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(DEPLOY / "jupyter" / "grader")
    (role,) = c.JupyterHub.load_roles
    assert role["groups"] == ["graders"] and f"access:services!service={service['name']}" in role["scopes"]
    student_path = c.Spawner.environment["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert student_path[0] == str(DEPLOY / "jupyter" / "student") and student_path[-1] == str(tmp_path / "etc")
    assert c.Spawner.cmd == ["/opt/env/bin/jupyterhub-singleuser"] and c.Spawner.notebook_dir == "~"
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'state' / 'jupyterhub.sqlite'}"


def test_hub_config_can_use_nativeauthenticator_instead_of_unix_passwords(tmp_path):
    roster = _roster(tmp_path, "root,instructor,Ada,T\n")
    c = _load_config(tmp_path, roster, authenticator="native")
    assert c.JupyterHub.authenticator_class == "native" and c.NativeAuthenticator.open_signup is False


def test_student_settings_keep_the_assignment_list_and_validate_and_switch_off_the_instructor_tools():
    lab = json.loads((DEPLOY / "jupyter/student/labconfig/page_config.json").read_text())["disabledExtensions"]
    assert {k for k, v in lab.items() if v and k.startswith("@jupyter/nbgrader")} == {
        "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list"}
    server = json.loads((DEPLOY / "jupyter/student/jupyter_server_config.json").read_text())
    switches = {k.rsplit(".", 1)[1]: v for k, v in server["ServerApp"]["jpserver_extensions"].items()}
    assert switches == {"formgrader": False, "course_list": False, "assignment_list": True, "validate_assignment": True}
    grader = json.loads((DEPLOY / "jupyter/grader/jupyter_server_config.json").read_text())
    assert all(grader["ServerApp"]["jpserver_extensions"].values())


def test_hub_lists_what_install_sh_must_set_up_and_the_command_it_would_run(tmp_path):
    roster = _roster(tmp_path, "nlhub_nobody_t,instructor,Ada,T\nnlhub_nobody_a,student,Al,A\n")
    setup = HubSetup(roster=roster, instructor="nlhub_nobody_t", env_bin=tmp_path / "env/bin",
                     course=tmp_path / "course", exchange=tmp_path / "exchange", config_dir=tmp_path / "etc",
                     kernel_prefix=tmp_path / "kp", state_dir=tmp_path / "hub")
    problems = setup_problems(setup)
    assert "no unix account nlhub_nobody_t" in problems and "no unix account nlhub_nobody_a" in problems
    assert len([p for p in problems if "nlhub_nobody_t" in p]) == 1  # an instructor in the roster: once
    for what in ("the course folder", "the system nbgrader configuration", "the course's folder in the exchange",
                 "the course kernel", "jupyterhub-singleuser"):
        assert any(what in p for p in problems), (what, problems)
    done = _hub("--roster", str(roster), "--env-bin", str(tmp_path / "env/bin"), "--course", str(tmp_path / "course"),
                "--state-dir", str(tmp_path / "hub"), "--print-command")
    assert done.returncode == 0, done.stderr
    assert f"deploy/install.sh --instructor nlhub_nobody_t --roster {roster}" in done.stdout
    assert f"--env-bin {tmp_path / 'env/bin'}" in done.stdout
    assert f"-f {DEPLOY / 'jupyterhub_config.py'} --JupyterHub.bind_url=http://127.0.0.1:8000/" in done.stdout
    assert not (tmp_path / "hub").exists(), "--print-command changed something"


def test_hub_refuses_a_roster_without_instructor_and_relative_paths(tmp_path):
    roster = _roster(tmp_path, "alice,student,Alice,A\n")
    done = _hub("--roster", str(roster), "--print-command")
    assert done.returncode == 2 and "names no instructor" in done.stderr
    done = _hub("--roster", str(roster), "--instructor", "ada", "--course", "relative/course", "--print-command")
    assert done.returncode == 2 and "--course must be an absolute path" in done.stderr
    bad = _roster(tmp_path, "alice,teacher,Alice,A\n")
    done = _hub("--roster", str(bad), "--instructor", "ada", "--print-command")
    assert done.returncode != 0 and "role 'teacher'" in done.stderr


def test_hub_refuses_to_start_without_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    done = _hub("--roster", str(_roster(tmp_path, "ada,instructor,A,T\n")))
    assert done.returncode == 1 and "runs as root" in done.stderr
