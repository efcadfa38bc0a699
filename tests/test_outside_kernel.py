"""The outside-kernel grading framework, without running nbgrader (quick)."""

import runpy
from pathlib import Path

import nbformat
import pytest

from autograder.nbgrader_plugins.check_data import MIME, read_emitted, to_data
from autograder.nbgrader_plugins.outside_kernel import GradingContext, check_values, registered
from autograder.nbgrader_plugins.outside_kernel import CheckFailed

ROOT = Path(__file__).resolve().parent.parent
GRADED_OUTSIDE = ["hw01_label_corruption", "hw03_robust_losses", "hw04_reweighting"]


def _config_grader_modules():
    class C(dict):
        def __getattr__(self, name):
            return self.setdefault(name, C())

        def __setattr__(self, name, value):
            self[name] = value

    c = C()
    runpy.run_path(str(ROOT / "nbgrader_config.py"), init_globals={"get_config": lambda: c})
    return c


@pytest.mark.parametrize("name", GRADED_OUTSIDE)
def test_every_grade_cell_of_the_homework_has_an_outside_kernel_grader(name):
    import importlib

    config = _config_grader_modules()
    for module in config.GradeOutsideKernel.grader_modules:
        importlib.import_module(module)
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    grade_ids = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    assert grade_ids and grade_ids == {gid for _, gid in registered(name)}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert "BEGIN HIDDEN TESTS" in cell.source and "emit(" in cell.source, cell.metadata


def test_autograde_pipeline_grades_outside_the_kernel_between_limit_output_and_save():
    names = [p.__name__ for p in _config_grader_modules().Autograde.autograde_preprocessors]
    assert names.index("LimitOutput") < names.index("GradeOutsideKernel") < names.index("SaveAutoGrades")


def _ctx(outputs):
    cell = nbformat.v4.new_code_cell("", outputs=outputs)
    return GradingContext("a", "s", "g", Path("."), Path("."), Path("."), cell, 1.0)


def test_missing_or_duplicated_check_data_scores_zero_with_the_kernels_error():
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="the keys of the curve", traceback=[])
    with pytest.raises(CheckFailed, match="AssertionError: the keys of the curve"):
        check_values(_ctx([error]))
    with pytest.raises(CheckFailed, match="did not report"):
        check_values(_ctx([]))
    data = nbformat.v4.new_output("display_data", data={MIME: {"version": 1, "values": {"x": 1}}})
    with pytest.raises(CheckFailed, match="2 results"):
        check_values(_ctx([data, data]))
    assert read_emitted(_ctx([data]).cell) == {"x": 1}


def test_check_data_is_plain_json():
    import numpy as np
    import torch

    assert to_data({"a": np.arange(3), 0.5: torch.tensor([1.0, float("nan")]), "b": np.bool_(True)}) == \
        {"a": [0, 1, 2], "0.5": [1.0, "nan"], "b": True}
