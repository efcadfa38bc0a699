"""Every homework source follows the homework layout of CONTRIBUTING.md ("Notebook layout").

Quick: the source notebooks in ``solutions/`` are read as JSON, never executed. The points
in the title, the parts table and the part headings are checked against the nbgrader
points of the grade cells under each heading.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOMEWORKS = sorted((ROOT / "solutions").glob("hw[0-9][0-9]_*/hw[0-9][0-9]_*.ipynb"))

TITLE = re.compile(r"# Homework (\d\d): ([A-Z][^\n]*) \((\d+) points\)")
TIME = re.compile(r"^\*\*Time:\*\* about [^\n]+ for a student[^\n]*$", re.M)
PART = re.compile(r"## Part (\w+) \((\d+) points?\): (\S[^\n]*)")
TABLE_ROW = re.compile(r"^\| *(\w+) *\|[^\n]*\| *(\d+) *\|$", re.M)
LAST = "## To think about (not graded)"
INTERNAL_NAMES = re.compile(r"seed[ _-]?00\d|\.\./shared|shared/seeds", re.I)

homework = pytest.mark.parametrize("path", HOMEWORKS, ids=[p.stem for p in HOMEWORKS])


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell):
    return "".join(cell["source"])


def _nbgrader(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def _headings(cells):
    """(cell index, line) of every level-1 and level-2 markdown heading, in order."""
    return [(i, line.strip()) for i, c in enumerate(cells) if c["cell_type"] == "markdown"
            for line in _text(c).splitlines() if re.match(r"#{1,2} ", line)]


def _parts(cells):
    """[(name, points in the heading, nbgrader points of the grade cells under it)]."""
    headings = _headings(cells)
    parts = []
    for k, (i, line) in enumerate(headings):
        match = PART.fullmatch(line)
        if not match:
            continue
        end = headings[k + 1][0] if k + 1 < len(headings) else len(cells)
        graded = sum(float(_nbgrader(c).get("points", 0)) for c in cells[i:end] if _nbgrader(c).get("grade"))
        parts.append((match.group(1), int(match.group(2)), graded))
    return parts


def test_there_are_four_homeworks_to_check():
    assert [p.parent.name[:4] for p in HOMEWORKS] == ["hw01", "hw02", "hw03", "hw04"], HOMEWORKS


@homework
def test_title_names_the_number_a_sentence_case_title_and_the_points(path):
    first = _cells(path)[0]
    line = _text(first).splitlines()[0]
    match = TITLE.fullmatch(line)
    assert first["cell_type"] == "markdown" and match, f"first line {line!r} is not '# Homework NN: Title (P points)'"
    assert match.group(1) == path.stem[2:4], f"title number {match.group(1)} does not match {path.name}"
    title = match.group(2)
    capitalized = [w for w in title.split()[1:] if re.fullmatch(r"[A-Z][a-z]+", w)]
    assert len(capitalized) <= 1, f"title {title!r} is in title case, not sentence case"


@homework
def test_opening_cell_has_a_parts_table_and_a_time_estimate(path):
    cells = _cells(path)
    text = _text(cells[0])
    assert TIME.search(text), f"{path.name}: no '**Time:** about ... for a student' line in the first cell"
    rows = TABLE_ROW.findall(text)
    parts = _parts(cells)
    assert [(name, int(points)) for name, points in rows] == [(name, points) for name, points, _ in parts], \
        f"{path.name}: the table's parts and points {rows} differ from the part headings {parts}"


@homework
def test_setup_heading_then_one_preamble_cell_through_start_notebook(path):
    cells = _cells(path)
    headings = _headings(cells)
    assert headings[1][1] == "## Setup", f"{path.name}: the first section is {headings[1][1]!r}, not '## Setup'"
    setup = headings[1][0]
    assert _text(cells[setup]).startswith("## Setup\n"), "the Setup cell does not start with its heading"
    assert all(c["cell_type"] != "code" for c in cells[:setup]), "code before ## Setup"
    preamble = cells[setup + 1]
    text = _text(preamble)
    assert preamble["cell_type"] == "code" and _nbgrader(preamble).get("locked"), \
        "## Setup is not followed by a locked code cell"
    assert "import noisylabels as nl" in text
    assert re.search(r"^SEED = 0$", text, re.M), "the preamble does not set SEED = 0"
    assert re.search(r"^SIZE = nl\.start_notebook\(seed=SEED\b", text, re.M), \
        "the preamble does not call SIZE = nl.start_notebook(seed=SEED, ...)"
    for old in ("nl.run_size()", "seed_everything(", "torch.set_num_threads("):
        assert old not in text, f"the preamble still calls {old} (nl.start_notebook does it)"
    calls = sum(_text(c).count("nl.start_notebook(") for c in cells if c["cell_type"] == "code")
    assert calls == 1, f"{path.name} calls nl.start_notebook {calls} times"
    for i, c in enumerate(cells):
        if c["cell_type"] == "code":
            assert not re.search(r"\b(CONFIG|CONFIGS|config)\b", _text(c)), f"cell {i}: settings are called SETTINGS"


@homework
def test_sections_are_setup_the_parts_and_the_questions_last(path):
    cells = _cells(path)
    sections = [line for _, line in _headings(cells)[1:]]
    assert sections[0] == "## Setup" and sections[-1] == LAST, f"{path.name}: sections {sections}"
    middle = sections[1:-1]
    assert middle and all(PART.fullmatch(line) for line in middle), \
        f"{path.name}: between Setup and {LAST!r} only '## Part X (N points): title' headings, got {middle}"
    last_heading = _headings(cells)[-1][0]
    assert not any(_nbgrader(c).get("grade") or _nbgrader(c).get("solution") for c in cells[last_heading:]), \
        f"{path.name}: graded or solution cells after {LAST!r}"


@homework
def test_part_points_equal_their_grade_cells_and_add_up_to_the_title(path):
    cells = _cells(path)
    total = int(TITLE.fullmatch(_text(cells[0]).splitlines()[0]).group(3))
    parts = _parts(cells)
    for name, points, graded in parts:
        assert graded == points, f"{path.name}: Part {name} says {points} points, its grade cells give {graded:g}"
    assert sum(p for _, p, _ in parts) == total, f"{path.name}: parts add up to {sum(p for _, p, _ in parts)}, not {total}"
    all_graded = sum(float(_nbgrader(c).get("points", 0)) for c in cells if _nbgrader(c).get("grade"))
    assert all_graded == total, f"{path.name}: the grade cells give {all_graded:g} points in all, the title {total}"


@homework
def test_student_facing_text_names_no_internal_source_documents(path):
    for i, cell in enumerate(_cells(path)):
        found = INTERNAL_NAMES.search(_text(cell))
        assert not found, f"{path.name} cell {i}: internal name {found.group(0)!r}; say what the source is"


@homework
def test_introduction_states_what_grading_withholds(path):
    """Homeworks whose graders withhold library functions say so, and that Validate is only a first check."""
    from autograder.nbgrader_plugins import grading_edition, hw01_grading, hw03_grading, hw04_grading  # noqa: F401 (register)

    entry = grading_edition.withheld(path.stem)
    if entry is None:
        pytest.skip(f"{path.stem} withholds nothing")
    intro = " ".join(_text(_cells(path)[0]).split())
    assert "the library's versions of these functions are not available when your notebook is graded" in intro
    assert "Validate" in intro and "only a first check" in intro
