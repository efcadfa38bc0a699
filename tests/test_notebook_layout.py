"""Every lesson follows the one layout of CONTRIBUTING.md ("Notebook layout").

Quick: the notebooks are read as JSON, never executed. The homework half of the layout
lives in its own test file.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))

TITLE = re.compile(r"# Lesson (\d\d): ([A-Z][^\n]*)")
OBJECTIVES = "**After this lesson you can:**"
TIME = re.compile(r"^\*\*Time:\*\* about \d+ minutes? at default size on a 2-core CPU "
                  r"\(about \d+ in quick mode\)\.$", re.M)
CLOSING = ["## Checking the result", "## Summary", "## Exercises", "## References and further reading"]
OTHER_SETTINGS_NAMES = re.compile(r"\b(CONFIG|CONFIGS|config)\b")
NUMBERED_HEADING = re.compile(r"^#{2,6} +\d+[.)]", re.M)
INTERNAL_NAMES = re.compile(r"seed[ _-]?00\d|\.\./shared|shared/seeds", re.I)


def _cells(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


def _headings(cells):
    """(cell index, heading line) of every markdown heading, in order."""
    return [(i, line.strip()) for i, (kind, text) in enumerate(cells) if kind == "markdown"
            for line in text.splitlines() if line.startswith("#")]


def _setup(cells):
    """Index of the `## Setup` markdown cell."""
    found = [i for i, (kind, text) in enumerate(cells) if kind == "markdown" and text.startswith("## Setup\n")]
    assert len(found) == 1, f"expected one cell starting with '## Setup', found {len(found)}"
    return found[0]


def _code_after(cells, start, count):
    return [i for i in range(start + 1, len(cells)) if cells[i][0] == "code"][:count]


lesson = pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])


def test_there_are_lessons_to_check():
    assert len(LESSONS) >= 6, f"found only {[p.name for p in LESSONS]}"


@lesson
def test_title_names_the_lesson_number_and_a_short_sentence_case_title(path):
    kind, text = _cells(path)[0]
    first_line = text.splitlines()[0] if text else ""
    match = TITLE.fullmatch(first_line)
    assert kind == "markdown" and match, f"first line {first_line!r} is not '# Lesson NN: Title'"
    assert match.group(1) == path.name[:2], f"title number {match.group(1)} does not match the file name"
    title = match.group(2)
    assert len(title) <= 60 and not title.endswith("."), f"title too long or ends with a period: {title!r}"
    capitalized = [w for w in title.split()[1:] if re.fullmatch(r"[A-Z][a-z]+", w)]
    assert len(capitalized) <= 1, f"title {title!r} is in title case, not sentence case"


@lesson
def test_opening_cell_says_what_the_reader_can_do_and_how_long_it_takes(path):
    text = _cells(path)[0][1]
    assert OBJECTIVES in text, f"{path.name}: no '{OBJECTIVES}' in the first cell"
    after = text.split(OBJECTIVES, 1)[1]
    bullets = []
    for line in after.lstrip("\n").splitlines():
        if not line.strip():
            break
        if line.startswith("- "):
            bullets.append(line)
    assert len(bullets) >= 3, f"{path.name}: the objectives need at least 3 bullets, found {len(bullets)}"
    assert TIME.search(text), (f"{path.name}: no line '**Time:** about N minutes at default size on a 2-core "
                               "CPU (about M in quick mode).' in the first cell")
    assert text.index(OBJECTIVES) < TIME.search(text).start(), "the time comes after the objectives"


@lesson
def test_setup_is_one_preamble_cell_that_seeds_and_reads_the_size_through_start_notebook(path):
    cells = _cells(path)
    setup = _setup(cells)
    assert setup + 1 < len(cells) and cells[setup + 1][0] == "code", "## Setup is not followed by a code cell"
    preamble = cells[setup + 1][1]
    assert re.search(r"^SEED = 0$", preamble, re.M), "the preamble does not set SEED = 0"
    assert re.search(r"^SIZE = nl\.start_notebook\(seed=SEED\b", preamble, re.M), \
        "the preamble does not call SIZE = nl.start_notebook(seed=SEED, ...)"
    assert "import noisylabels as nl" in preamble
    for old in ("nl.run_size()", "seed_everything(", "torch.set_num_threads("):
        assert old not in preamble, f"the preamble still calls {old} (nl.start_notebook does it)"
    calls = sum(text.count("nl.start_notebook(") for kind, text in cells if kind == "code")
    assert calls == 1, f"{path.name} calls nl.start_notebook {calls} times"
    assert all(kind != "code" for kind, _ in cells[:setup]), "code before ## Setup"


@lesson
def test_settings_of_each_size_are_one_dict_named_settings(path):
    cells = _cells(path)
    setup = _setup(cells)
    near = [cells[i][1] for i in _code_after(cells, setup, 2)]
    defined = [text for text in near if re.search(r"^SETTINGS = \{", text, re.M)]
    assert defined, "SETTINGS = {...}[SIZE] is neither in the preamble nor in the code cell after it"
    body = defined[0].split("SETTINGS = {", 1)[1]
    assert re.search(r"^\}\[SIZE\]", body, re.M), "SETTINGS is not indexed by [SIZE] where it is defined"
    for size in ("quick", "default", "full"):
        assert f'"{size}"' in body.split("}[SIZE]", 1)[0], f"SETTINGS has no {size!r} entry"
    for i, (kind, text) in enumerate(cells):
        if kind == "code":
            found = OTHER_SETTINGS_NAMES.search(text)
            assert not found, f"cell {i} uses the name {found.group(0)!r}: call it SETTINGS"


@lesson
def test_section_headings_carry_no_numbers(path):
    for i, (kind, text) in enumerate(_cells(path)):
        if kind == "markdown":
            found = NUMBERED_HEADING.search(text)
            assert not found, f"cell {i}: numbered heading {found.group(0)!r}"


@lesson
def test_lesson_closes_with_checks_summary_exercises_and_references_last(path):
    cells = _cells(path)
    headings = _headings(cells)
    at = {}
    for name in CLOSING:
        found = [i for i, (_, h) in enumerate(headings) if h == name]
        assert len(found) == 1, f"{path.name}: expected one heading {name!r}, found {len(found)}"
        at[name] = found[0]
    order = [at[name] for name in CLOSING]
    assert order == sorted(order), f"{path.name}: closing headings out of order: {[headings[k][1] for k in sorted(order)]}"
    assert headings[-1][1] == CLOSING[-1], f"{path.name}: the last heading is {headings[-1][1]!r}"
    assert headings[-1][0] == len(cells) - 1, f"{path.name}: cells follow the references"
    # the checks: asserts, then nl.report_result, between "Checking the result" and "Summary"
    check_cell, summary_cell = headings[at[CLOSING[0]]][0], headings[at[CLOSING[1]]][0]
    code = [text for kind, text in cells[check_cell:summary_cell] if kind == "code"]
    assert any("assert " in text for text in code), "no assert under '## Checking the result'"
    assert any("nl.report_result(" in text for text in code), "no nl.report_result under '## Checking the result'"
    first_assert = next(k for k, text in enumerate(code) if "assert " in text)
    last_report = max(k for k, text in enumerate(code) if "nl.report_result(" in text)
    assert first_assert <= last_report, "nl.report_result comes before the asserts"
    references = cells[-1][1]
    assert len(references.splitlines()) >= 4, f"{path.name}: the references cell is nearly empty"


@lesson
def test_student_facing_text_names_no_internal_source_documents(path):
    for i, (kind, text) in enumerate(_cells(path)):
        found = INTERNAL_NAMES.search(text)
        assert not found, f"{path.name} cell {i}: internal name {found.group(0)!r}; say what the source is"
