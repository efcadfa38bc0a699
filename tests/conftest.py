"""Shared test set-up.

Tests marked ``slow`` (notebook execution, end-to-end nbgrader runs) run when the
environment has ``CI=true`` (as ``.ci/run`` does) or with ``pytest --run-slow``; the
quick loop (plain ``pytest``) skips them.
"""

import os
from pathlib import Path

# Tests train tiny models, for which one thread is faster than two fighting over the cores.
# The notebook kernels and nbgrader runs that the slow tests start inherit this too: on a
# 2-core machine with anything else busy, two OpenMP threads per kernel made lesson 03's
# quick run about seven times slower (it hit the cell time limit).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (the default when CI=true)")


def _run_slow(config) -> bool:
    return config.getoption("--run-slow") or _ci()


# tryfirst: pytest-xdist's worker reads the xdist_group marks in its own hook of this name
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    _keep_shared_fixtures_on_one_worker(items)
    _slow_modules_first(items)
    if _run_slow(config):
        return
    skip = pytest.mark.skip(reason="slow: runs when CI=true or with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


_LOST_GROUP = pytest.StashKey[str]()


def pytest_collection_finish(session):
    """On an xdist worker with ``--dist loadgroup``, every grouped test must carry its group in its
    id (pytest-xdist adds ``@group``). Where it does not (pytest 9.2 with pytest-xdist 3.8), the
    groups are ignored in silence and tests sharing a fixture or a uid collide: they fail instead."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers only
        return
    for item in session.items:
        groups = [mark.args[0] for mark in item.iter_markers("xdist_group")]
        if groups and "@" not in item.nodeid:
            item.stash[_LOST_GROUP] = "_".join(sorted(groups))


def pytest_runtest_setup(item):
    if _LOST_GROUP in item.stash:
        pytest.fail(f"pytest-xdist ignored this test's xdist_group {item.stash[_LOST_GROUP]!r}, so it could run "
                    "beside the tests it must not meet; install the versions pyproject.toml's dev extras ask for",
                    pytrace=False)


WIDE_SCOPES = ("module", "package", "session")


def _keep_shared_fixtures_on_one_worker(items):
    """With pytest-xdist (``-n``, ``--dist loadgroup``) tests go one by one to the workers;
    a module-scoped fixture (a JupyterLab, a hub, a class of accounts) would then be set up
    once in every worker that gets one of its tests. Tests that use a module-scoped fixture
    of their module go to one worker together (``xdist_group`` named after the module; one
    named after the fixture for a session fixture of a conftest)."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        module = item.nodeid.split("::")[0]
        groups = set()
        for name, defs in (info.name2fixturedefs.items() if info else ()):
            fixture = defs[-1]
            if fixture.scope not in WIDE_SCOPES or not fixture.baseid:  # pytest's own (tmp_path_factory)
                continue
            groups.add(module if fixture.baseid.split("::")[0] == module else f"fixture-{name}")
        for group in sorted(groups):
            item.add_marker(pytest.mark.xdist_group(group))


def _slow_modules_first(items):
    """Modules holding slow tests first (their order and the order inside a module kept), so
    that on several workers the long tests start early and quick tests fill the gaps at the end."""
    slow_modules = {item.nodeid.split("::")[0] for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_modules)


@pytest.fixture
def root() -> Path:
    """The course repository."""
    return ROOT


@pytest.fixture
def require_sandbox():
    """Skip where the grading sandbox cannot run here; on CI (``CI=true``) fail instead."""
    from autograder import sandbox

    problem = sandbox.sandbox_problem()
    if problem:
        if _ci():
            pytest.fail(f"CI must run the sandbox tests: {problem}")
        pytest.skip(f"no isolation here: {problem}")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
