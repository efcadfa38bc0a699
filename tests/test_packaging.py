"""The project's own files install what it needs, and the conda and pip lists agree."""

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml


def _normalize(req: str) -> str:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req).groups()
    return name.lower().replace("_", "-") + spec.replace(" ", "")


def _pyproject(root):
    return tomllib.loads((root / "pyproject.toml").read_text())


def _environment_pip(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return env, [p for p in pip if not p.startswith("-e")]


def test_environment_yml_lists_the_same_packages_as_pyproject(root):
    project = _pyproject(root)["project"]
    wanted = {_normalize(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    _, pip = _environment_pip(root)
    assert {_normalize(r) for r in pip} == wanted


def test_environment_yml_pins_python_311_and_installs_the_course_package(root):
    env, _ = _environment_pip(root)
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip


def test_torch_is_pinned_to_the_local_cpu_build(root):
    deps = _pyproject(root)["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    assert not any(d.startswith("torchvision") for d in deps), "torchvision cannot be imported here"


def test_the_noisylabels_command_is_installed():
    exe = shutil.which("noisylabels") or str(__import__("pathlib").Path(sys.executable).with_name("noisylabels"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "build" in out.stdout and "assignments" in out.stdout


def test_importing_the_package_loads_no_torch_and_every_exported_name_resolves():
    import noisylabels as nl

    started = subprocess.run([sys.executable, "-c", "import sys, noisylabels\nprint(sorted({m.split('.')[0] for m in sys.modules} "
                              "& {'torch', 'matplotlib', 'sklearn'}))"],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0 and started.stdout.strip() == "[]", started.stdout + started.stderr
    missing = [name for name in nl.__all__ if not hasattr(nl, name)]
    assert missing == [] and len(nl.__all__) > 100
    assert set(nl.__all__) <= set(dir(nl)) and {"noise", "plots", "training"} <= set(dir(nl))
    assert nl.fit is nl.training.fit and nl.noise.corrupt_labels is nl.corrupt_labels
    with pytest.raises(AttributeError, match="has no attribute 'fitt'"):
        nl.fitt


def test_readme_gives_the_setup_main_job_and_test_commands_that_ci_runs(root):
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    assert "noisylabels build" in readme
    test_command = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S).group(1).strip()
    assert test_command in ci, f"README's test command {test_command!r} is not what .ci/run runs"
    setup = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S).group(1).strip()
    for line in setup.splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.strip() in ci, f"set-up step {line!r} is not in .ci/run"
