"""A class on JupyterHub, as its people use it (issue 23): ``noisylabels hub`` (which runs
``deploy/install.sh`` first) on a free localhost port, real unix accounts logging in with
their passwords (PAM), real Chromium through Playwright.

One hub for the module: an instructor and two students, accounts ``nlhub_<random>_{t,a,b}``
created by the test (with passwords) and removed afterwards, even on failure. In order:

1. each student logs in, opens the Assignments tab, fetches hw01, edits it in JupyterLab
   (student a fills in every part, student b only Part A), validates and submits it from the
   Assignments tab;
2. the instructor collects and releases feedback from formgrader (a Hub service only the
   grading group can open), and autogrades from the command line as their own account (no root);
3. each student fetches feedback and sees their own score only;
4. as a student account, the other student's work, the gradebook, ``instructor/``,
   ``solutions/``, the submissions and the exchange are each refused by the kernel.

Screenshots go to each test's ``tmp_path``; with ``NOISYLABELS_DOCS_SCREENSHOTS=1`` a few
are also written, shrunk, to ``docs/images/`` for the README.
Slow (CI=true or --run-slow); without a browser, npm or root it skips locally and fails in CI.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from lab_server import browser, free_port, in_ci  # noqa: F401 (browser is a fixture)
from system_env import course_env, system_env_problem

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HW = "hw01_label_corruption"
COURSE_ID = "noisy-labels"
PROXY_CACHE = Path("/opt/noisylabels-test-proxy")  # npm's configurable-http-proxy, installed once
DOCS_IMAGES = ROOT / "docs" / "images"
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"
PART_A = "corrupt_uniform"


def _need(problem: str | None):
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)


def _solutions() -> dict[str, str]:
    """The source's solution code a grade id (markers dropped)."""
    nb = json.loads((ROOT / "solutions" / HW / f"{HW}.ipynb").read_text())
    solved = {}
    for cell in nb["cells"]:
        grade = cell["metadata"].get("nbgrader", {})
        if grade.get("solution") and cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines(keepends=True)
            solved[grade["grade_id"]] = "".join(
                l for l in lines if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")).rstrip("\n")
    return solved


def _proxy_bin() -> Path:
    """The folder holding ``configurable-http-proxy`` (installed with npm on first use)."""
    from noisylabels.hub import find_proxy, install_proxy

    PROXY_CACHE.mkdir(parents=True, exist_ok=True)
    with open(PROXY_CACHE.with_name(PROXY_CACHE.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        local = PROXY_CACHE / "node_modules" / ".bin" / "configurable-http-proxy"
        if not local.exists():
            install_proxy(PROXY_CACHE)
    assert find_proxy(PROXY_CACHE) == local
    return local.parent


class Hub:
    """The running hub, its accounts and folders."""

    def __init__(self, base: Path, prefix: str):
        self.base, self.prefix = base, prefix
        self.instructor, self.a, self.b = f"{prefix}_t", f"{prefix}_a", f"{prefix}_b"
        self.passwords = {u: secrets.token_urlsafe(12) for u in (self.instructor, self.a, self.b)}
        self.course, self.exchange = base / "course", base / "exchange"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env_bin: Path | None = None
        self.proc: subprocess.Popen | None = None

    def home(self, user: str) -> Path:
        import pwd

        return Path(pwd.getpwnam(user).pw_dir)

    def run_as(self, user: str, command: str, cwd: Path | None = None, timeout: int = 900, check: bool = True):
        """A shell command as ``user`` (a clean environment: the course environment on PATH, the system config)."""
        env = ["HOME=" + str(self.home(user)), f"PATH={self.env_bin}:/usr/bin:/bin", f"USER={user}",
               f"JUPYTER_CONFIG_PATH={self.base / 'etc'}", f"JUPYTER_PATH={self.base / 'kernels/share/jupyter'}",
               "NOISYLABELS_SIZE=quick", "OMP_NUM_THREADS=1", "LANG=C.UTF-8"]
        result = subprocess.run(["runuser", "-u", user, "--", "env", "-i", *env, "bash", "-c", command],
                                cwd=cwd or self.base, capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, (user, command, result.stdout[-3000:], result.stderr[-3000:])
        return result

    def log(self) -> str:
        path = self.base / "hub.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _create_accounts(hub: Hub):
    for user in (hub.instructor, hub.a, hub.b):
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", user], check=True)
    pairs = "".join(f"{u}:{p}\n" for u, p in hub.passwords.items())
    subprocess.run(["chpasswd"], input=pairs, text=True, check=True)


def _kill_accounts_processes(hub: Hub):
    """Whatever runs as the class's accounts (their servers and kernels), by process id."""
    for user in (hub.instructor, hub.a, hub.b):
        out = subprocess.run(["ps", "-o", "pid=", "-u", user], capture_output=True, text=True).stdout.split()
        for pid in out:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _remove_accounts(hub: Hub):
    _kill_accounts_processes(hub)
    for user in (hub.instructor, hub.a, hub.b):
        subprocess.run(["userdel", "-r", "-f", user], capture_output=True)


def _stop(proc: subprocess.Popen):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the hub stops its servers and the proxy
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def hub(browser):
    """``noisylabels hub`` for a fresh class of three accounts (removed at the end)."""
    if os.geteuid() != 0:
        _need("the class hub test runs as root (it creates unix accounts and starts JupyterHub)")
    _need(system_env_problem())
    _need(None if shutil.which("npm") or (PROXY_CACHE / "node_modules/.bin/configurable-http-proxy").exists()
          else "JupyterHub's proxy needs npm (apt-get install -y nodejs npm)")
    base = Path(tempfile.mkdtemp(prefix="nlhub_", dir="/tmp"))
    base.chmod(0o755)  # the accounts reach the exchange, the kernel and the system config in here
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    h = Hub(base, f"nlhub_{suffix}")
    try:
        h.env_bin = course_env()
        proxy_bin = _proxy_bin()
        _create_accounts(h)
        (base / "roster.csv").write_text("username,role,first_name,last_name\n"
                                         f"{h.instructor},instructor,Ada,Teacher\n"
                                         f"{h.a},student,Alice,Able\n{h.b},student,Bob,Baker\n")
        env = dict(os.environ, NOISYLABELS_SIZE="quick", PATH=f"{proxy_bin}:{os.environ['PATH']}")
        cmd = [sys.executable, "-m", "noisylabels.cli", "hub", "--roster", str(base / "roster.csv"),
               "--env-bin", str(h.env_bin), "--course", str(h.course), "--exchange", str(h.exchange),
               "--config-dir", str(base / "etc"), "--kernel-prefix", str(base / "kernels"),
               "--state-dir", str(base / "hub"), "--port", str(h.port)]
        with open(base / "hub.log", "w") as log:
            h.proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + 600
        while True:
            if h.proc.poll() is not None:
                pytest.fail(f"noisylabels hub exited ({h.proc.returncode}):\n{h.log()}")
            try:
                urllib.request.urlopen(f"{h.url}/hub/api", timeout=3)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the hub did not answer within 600 s:\n{h.log()}")
                time.sleep(1)
        yield h
    finally:
        if h.proc is not None:
            # the servers first: the hub then finds them gone instead of waiting out each one's
            # interrupt and terminate timeouts (34 s of a CI run's teardown)
            _kill_accounts_processes(h)
            _stop(h.proc)
        _remove_accounts(h)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ the browser side
def _login(browser, hub: Hub, user: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", hub.passwords[user])
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=240_000)
    page.goto(f"{hub.url}/user/{user}/lab?reset")  # not the tabs of an earlier visit
    page.wait_for_selector(".jp-DirListing-content", state="visible")
    page.wait_for_timeout(2000)  # late plugins (menus)
    return page


def _assignments_tab(page):
    page.click(".lm-MenuBar-itemLabel:text-is('Nbgrader')")
    page.click(".lm-Menu-itemLabel:text-is('Assignment List')")
    page.wait_for_selector("#released_assignments_list .list_item, #released_assignments_list_placeholder:not([hidden])")
    page.wait_for_timeout(1000)


def _show_assignments_tab(page):
    page.click(".lm-DockPanel-tabBar .lm-TabBar-tab:has-text('Assignments')")
    page.wait_for_timeout(500)


def _dialog_text(page, timeout=900_000) -> str:
    page.wait_for_selector(".jp-Dialog", timeout=timeout)
    page.wait_for_function("() => !/Validating|Loading/i.test(document.querySelector('.jp-Dialog')?.innerText || '')",
                           timeout=timeout, polling=1000)
    page.wait_for_timeout(500)
    return page.inner_text(".jp-Dialog")


def _close_dialog(page):
    page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    page.wait_for_selector(".jp-Dialog", state="detached")


def _edit_solution_cells(page, hub: Hub, user: str, grade_ids: list[str]):
    """Type each solution into its cell in the open notebook (select all, insert), then save."""
    released = json.loads((hub.course / "assignments" / HW / f"{HW}.ipynb").read_text())
    index = {c["metadata"].get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(released["cells"])}
    solutions = _solutions()
    page.wait_for_selector(f"{NB} .jp-Cell", state="visible")
    for gid in grade_ids:
        cell = page.locator(f"{NB} .jp-Cell").nth(index[gid])
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(solutions[gid])
        page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty')")


def _student_submits(browser, hub: Hub, user: str, grade_ids: list[str], shots: Path) -> str:
    """Log in, fetch hw01 from the Assignments tab, edit, validate, submit; return Validate's message."""
    page = _login(browser, hub, user)
    try:
        page.screenshot(path=str(shots / f"{user}_lab.png"))
        _assignments_tab(page)
        page.screenshot(path=str(shots / f"{user}_assignments_released.png"))
        row = page.locator("#released_assignments_list .list_item", has_text=HW)
        row.locator("button:text-is('Fetch')").click()
        fetched = page.locator("#fetched_assignments_list .list_item", has_text=HW).first
        fetched.wait_for()
        notebook = hub.home(user) / HW / f"{HW}.ipynb"
        assert notebook.is_file(), f"Fetch left no {notebook}"
        # open the notebook from the Assignments tab, write the answers, save
        fetched.locator(".assignment-notebooks-link").click()
        panel = page.locator(f"#nbgrader-{COURSE_ID}-{HW}")
        panel.locator(f"a:text-is('{HW}')").click()
        _edit_solution_cells(page, hub, user, grade_ids)
        saved = json.loads(notebook.read_text())
        answers = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in saved["cells"]
                   if c["metadata"].get("nbgrader", {}).get("solution")}
        for gid in grade_ids:
            assert answers[gid].strip() == _solutions()[gid].strip(), f"{user}'s saved {gid} is not what was typed"
        page.screenshot(path=str(shots / f"{user}_editing.png"))
        # Validate from the Assignments tab
        _show_assignments_tab(page)
        panel.locator("button:text-is('Validate')").click()
        message = _dialog_text(page)
        page.screenshot(path=str(shots / f"{user}_validate.png"))
        _close_dialog(page)
        # Submit
        page.locator("#fetched_assignments_list .list_item", has_text=HW).locator("button:text-is('Submit')").first.click()
        page.locator("#submitted_assignments_list .list_item", has_text=HW).first.wait_for()
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / f"{user}_submitted.png"))
        return message
    except Exception:
        page.screenshot(path=str(shots / f"{user}_failure.png"))
        raise
    finally:
        page.context.close()


def test_students_fetch_edit_validate_and_submit_hw01_from_the_assignments_tab(hub, browser, tmp_path):
    solutions = _solutions()
    assert PART_A in solutions and len(solutions) >= 4
    hub.run_as(hub.instructor, f"noisylabels assignments --register {HW} && nbgrader release_assignment {HW}",
               cwd=hub.course)
    message_a = _student_submits(browser, hub, hub.a, list(solutions), tmp_path)
    assert message_a.startswith("Validation Results") and "Success! Your notebook passes all the tests." in message_a, \
        message_a[:3000]
    message_b = _student_submits(browser, hub, hub.b, [PART_A], tmp_path)
    assert "The following cell failed" in message_b and "NotImplementedError" in message_b, message_b[:3000]
    inbound = hub.exchange / COURSE_ID / "inbound"
    names = sorted(p.name.split("+")[0] for p in inbound.iterdir())
    assert names == sorted([hub.a, hub.b]), names
    _docs_screenshots(tmp_path, {f"{hub.a}_assignments_released.png": "hub_assignments_tab.png",
                                 f"{hub.a}_validate.png": "hub_validate.png",
                                 f"{hub.a}_submitted.png": "hub_submitted.png"})


# ------------------------------------------------------------------ grading
def _formgrader(browser, hub: Hub, user: str):
    page = _login(browser, hub, user)
    response = page.goto(f"{hub.url}/services/formgrader/")
    return page, response


def test_only_the_grading_group_opens_formgrader(hub, browser, tmp_path):
    page, response = _formgrader(browser, hub, hub.a)
    try:
        assert response.status == 403 and "You do not have permission" in page.inner_text("body"), page.inner_text("body")[:500]
        page.screenshot(path=str(tmp_path / "student_formgrader_403.png"))
    finally:
        page.context.close()
    page, response = _formgrader(browser, hub, hub.instructor)
    try:
        page.wait_for_selector(f"td.name:has-text('{HW}')")
        assert response.status == 200 and "/services/formgrader/formgrader" in page.url
    finally:
        page.screenshot(path=str(tmp_path / "instructor_formgrader.png"))
        page.context.close()


def _formgrader_button(page, hub: Hub, column: str) -> str:
    """Click hw01's formgrader button in column ``collect``, ``generate-feedback`` or
    ``release-feedback``; return the text of the dialog that reports the result."""
    page.goto(f"{hub.url}/services/formgrader/formgrader/manage_assignments")
    row = page.locator("tr", has=page.locator(f"td.name:has-text('{HW}')"))
    row.locator(f"td.{column} a").first.click()
    page.wait_for_selector(".modal-dialog .modal-body", timeout=600_000)
    page.wait_for_timeout(500)
    text = page.inner_text(".modal-dialog .modal-body")
    page.locator(".modal-dialog .modal-footer button").first.click()
    page.wait_for_selector(".modal-dialog", state="detached")
    return text


def test_instructor_collects_grades_and_releases_feedback_without_root(hub, browser, tmp_path):
    page = _login(browser, hub, hub.instructor)
    try:
        text = _formgrader_button(page, hub, "collect")
        assert text.startswith(f"Successfully collected submissions of '{HW}'"), text
        submitted = {p.name for p in (hub.course / "submitted").iterdir()}
        assert submitted == {hub.a, hub.b}, submitted
        # autograde in parallel as the instructor's own account (no root): both students at once
        command = f"noisylabels autograde {HW} --scheduler local:2"
        started = time.monotonic()
        graded = hub.run_as(hub.instructor, command, cwd=hub.course, timeout=1500)
        print(f"{command}: {time.monotonic() - started:.0f} s for 2 submissions")
        text = _formgrader_button(page, hub, "generate-feedback")
        assert text.startswith(f"Successfully generated feedback of '{HW}'"), text
        text = _formgrader_button(page, hub, "release-feedback")
        assert text.startswith(f"Successfully released feedback of '{HW}'"), text
        page.goto(f"{hub.url}/services/formgrader/formgrader/manage_submissions/{HW}")
        page.wait_for_selector(f"td.student-id:has-text('{hub.a}')")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(tmp_path / "formgrader_submissions.png"))
        scores = {user: page.locator("tr", has=page.locator(f"td.student-id:text-is('{user}')")).locator("td.score").inner_text()
                  for user in (hub.a, hub.b)}
        assert scores == {hub.a: "12 / 12", hub.b: "3 / 12"}, (scores, _first_errors(hub), graded.stdout[-2000:])
    finally:
        page.context.close()
    owned_by_root = [str(p) for p in hub.course.rglob("*") if p.stat().st_uid == 0]
    assert not owned_by_root, owned_by_root[:10]
    _docs_screenshots(tmp_path, {"formgrader_submissions.png": "hub_formgrader.png"})


def _first_errors(hub: Hub) -> dict[str, str]:
    """The first error in each autograded notebook (what to look at when a score is wrong)."""
    errors = {}
    for notebook in sorted((hub.course / "autograded").glob(f"*/{HW}/{HW}.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
            if error:
                errors[notebook.parts[-3]] = f"{error['ename']}: {error['evalue']}"
                break
    return errors


def _student_fetches_feedback(browser, hub: Hub, user: str, shots: Path) -> str:
    page = _login(browser, hub, user)
    try:
        _assignments_tab(page)
        row = page.locator("#submitted_assignments_list .list_item", has_text=HW).first
        row.locator("button:text-is('Fetch Feedback')").click()
        row.locator("text=view feedback").first.click()  # shows the feedback's folder in the file browser
        page.locator(".jp-DirListing-itemText", has_text=f"{HW}.html").wait_for(timeout=120_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / f"{user}_feedback_fetched.png"))
        pages = list((hub.home(user) / HW / "feedback").rglob(f"{HW}.html"))
        assert len(pages) == 1, pages
        feedback = page.context.new_page()  # the page as "Open in New Browser Tab" shows it
        feedback.goto(f"{hub.url}/user/{user}/files/{pages[0].relative_to(hub.home(user)).as_posix()}")
        feedback.wait_for_timeout(1500)
        feedback.screenshot(path=str(shots / f"{user}_feedback.png"))
        return feedback.inner_text("body")
    except Exception:
        page.screenshot(path=str(shots / f"{user}_failure.png"))
        raise
    finally:
        page.context.close()


def test_each_student_fetches_their_own_feedback(hub, browser, tmp_path):
    text_a = _student_fetches_feedback(browser, hub, hub.a, tmp_path)
    text_b = _student_fetches_feedback(browser, hub, hub.b, tmp_path)
    assert "Score: 12.0 / 12.0" in text_a and "3.0 / 12" not in text_a, text_a[:1500]
    assert "Score: 3.0 / 12.0" in text_b and "12.0 / 12.0" not in text_b, text_b[:1500]
    for user, other in ((hub.a, hub.b), (hub.b, hub.a)):
        pages = list((hub.home(user) / HW / "feedback").rglob("*.html"))
        assert len(pages) == 1, pages
        assert other not in pages[0].read_text(), f"{user}'s feedback names {other}"
    _docs_screenshots(tmp_path, {f"{hub.a}_feedback_fetched.png": "hub_feedback_fetched.png",
                                 f"{hub.a}_feedback.png": "hub_feedback.png"})


# ------------------------------------------------------------------ what a student cannot reach
PROBE = r"""
import errno, json, os, shutil, sys
results = {}
for label, op, path in json.loads(sys.argv[1]):
    try:
        if op == "read":
            with open(path, "rb") as f:
                f.read(1)
        elif op == "list":
            os.listdir(path)
        elif op == "write":
            with open(path, "ab") as f:
                f.write(b"x")
        elif op == "create":
            with open(os.path.join(path, "planted.txt"), "xb") as f:
                f.write(b"x")
        elif op == "remove":
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        elif op == "rename":
            os.rename(path, path + ".moved")
        results[label] = "allowed"
    except OSError as err:
        results[label] = errno.errorcode.get(err.errno, str(err.errno))
print(json.dumps(results))
"""


def test_a_student_cannot_read_or_change_others_work_grades_or_the_exchange(hub):
    course, exchange_course = hub.course, hub.exchange / COURSE_ID
    hub.run_as(hub.instructor, "mkdir -p instructor/hw02_evil_twins && echo secret > instructor/hw02_evil_twins/key.txt",
               cwd=course)
    other = hub.b
    other_home = hub.home(other)
    inbound_b = next(p for p in (exchange_course / "inbound").iterdir() if p.name.startswith(other + "+"))
    feedback_pages = [p for p in (exchange_course / "feedback").iterdir()]
    probes = [
        ("other's fetched homework: read", "read", other_home / HW / f"{HW}.ipynb"),
        ("other's fetched homework: change", "write", other_home / HW / f"{HW}.ipynb"),
        ("other's feedback in their home: read", "read", next((other_home / HW / "feedback").rglob("*.html"))),
        ("other's submission in the course: read", "read", course / "submitted" / other / HW / f"{HW}.ipynb"),
        ("other's submission in the course: change", "write", course / "submitted" / other / HW / f"{HW}.ipynb"),
        ("other's submission in the course: remove", "remove", course / "submitted" / other),
        ("other's autograded notebook: read", "read", course / "autograded" / other / HW / f"{HW}.ipynb"),
        ("other's feedback in the course: read", "read", course / "feedback" / other / HW / f"{HW}.html"),
        ("gradebook: read", "read", course / "gradebook.db"),
        ("gradebook: change", "write", course / "gradebook.db"),
        ("instructor/: list", "list", course / "instructor"),
        ("instructor/ key: read", "read", course / "instructor" / "hw02_evil_twins" / "key.txt"),
        ("solutions/: list", "list", course / "solutions"),
        ("solution notebook: read", "read", course / "solutions" / HW / f"{HW}.ipynb"),
        ("course folder: list", "list", course),
        ("exchange inbound: list", "list", exchange_course / "inbound"),
        ("other's inbound submission: rename", "rename", inbound_b),
        ("other's inbound submission: remove", "remove", inbound_b),
        ("other's inbound submission: plant a file", "create", inbound_b),
        ("other's inbound notebook: change", "write", inbound_b / f"{HW}.ipynb"),
        ("exchange feedback: list", "list", exchange_course / "feedback"),
        ("exchange feedback page: change", "write", feedback_pages[0]),
        ("released assignment: change", "write", exchange_course / "outbound" / HW / f"{HW}.ipynb"),
        ("released assignment: plant a file", "create", exchange_course / "outbound" / HW),
        ("course's exchange folder: rename", "rename", exchange_course),
        ("course's exchange folder: plant a file", "create", exchange_course),
    ]
    for label, _, path in probes:
        assert path.exists(), f"{label}: {path} does not exist, so the probe would prove nothing"
    before = {str(p): p.stat().st_mtime_ns for _, _, p in probes}
    argument = json.dumps([(label, op, str(path)) for label, op, path in probes])
    result = hub.run_as(hub.a, f"python -c {_shell_quote(PROBE)} {_shell_quote(argument)}")
    outcome = json.loads(result.stdout)
    allowed = {label: code for label, code in outcome.items() if code not in ("EACCES", "EPERM")}
    assert not allowed, f"a student account could do this: {allowed}"
    assert len(outcome) == len(probes)
    changed = [p for p, mtime in before.items() if Path(p).exists() and Path(p).stat().st_mtime_ns != mtime]
    missing = [p for p in before if not Path(p).exists()]
    assert not changed and not missing, (changed, missing)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# ------------------------------------------------------------------ the README's screenshots
def _docs_screenshots(folder: Path, names: dict[str, str]):
    """With NOISYLABELS_DOCS_SCREENSHOTS=1: the named screenshots, shrunk, into docs/images/."""
    if os.environ.get("NOISYLABELS_DOCS_SCREENSHOTS") != "1":
        return
    from PIL import Image

    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for source, target in names.items():
        image = Image.open(folder / source).convert("RGB")
        image.thumbnail((960, 960))
        image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(DOCS_IMAGES / target, optimize=True)
