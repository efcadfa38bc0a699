"""How fast the similarity report runs on a large class, and whether it finds planted copies.

For classes of 50, 200 and 500 generated ``hw02.py`` submissions (``--sizes``), it writes
the class to a temporary folder and times :func:`autograder.hw02.similarity.similarity_report`
(fingerprints, every pair compared, CSV and HTML written). The class is made from a few
base programs: the course's reference solution (``solutions/hw02_evil_twins/hw02.py``)
and the four independent honest solutions of ``tests/test_similarity.py``. Each student
is a mutated variant of one base program, mutated the way different students' code
differs and then some more:

- every local name renamed, top-level functions reordered, comments and docstrings replaced;
- lines added (generated statements) and simple statements removed, constants changed;

about 5 % of the students only filled in the released stub (a few generated lines in
its body: the starter code must not make them match). Then ``max(3, size // 20)`` planted
copy pairs: a student's program copied by another with the disguises a copier uses
(renamed names, reordered functions, changed comments, two or three lines added and
two removed). A planted pair is *found* when it is among the top N pairs of the report
(N = the number of planted pairs; only pairs at or above the report's threshold count).

    python benchmarks/similarity.py            # a table
    python benchmarks/similarity.py --json     # the table, then the JSON line last

Last line with ``--json``: ``{"class_sizes": [...], "seconds": [...], "recall_at_planted":
[...], "planted_pairs": [...], "flagged_pairs": [...], "max_unplanted_similarity": [...],
"min_planted_similarity": [...], "target_met": bool}``. Target (issue 17): 500
submissions in under 2 minutes on 2 cores, every planted pair found. One process, one
core; about 2 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib.util
import io
import json
import keyword
import random
import re
import sys
import tempfile
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.hw02.similarity import similarity_report  # noqa: E402

TARGET_SECONDS = 120.0
TARGET_SIZE = 500


# ----------------------------------------------------------------------------- base programs
def base_programs() -> list:
    """The reference solution and the honest solutions of the similarity tests (no author block)."""
    spec = importlib.util.spec_from_file_location("_similarity_tests", ROOT / "tests" / "test_similarity.py")
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    reference = (ROOT / "solutions" / "hw02_evil_twins" / "hw02.py").read_text(encoding="utf-8")
    reference = "".join(reference.splitlines(keepends=True)[3:])  # drop the staff's author block
    return [reference, tests.HONEST_SUBSETS, tests.HONEST_NEIGHBOURS, tests.HONEST_LOGREG,
            tests.HONEST_LOSSES], tests.filled_stub


# ----------------------------------------------------------------------------- mutations
_KEEP = set(dir(builtins)) | set(keyword.kwlist) | {"self", "cls", "__name__", "__main__"}
_SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "vas", "po", "di", "sel", "an", "ox", "ri", "fe", "mun"]


def _new_name(rng: random.Random, used: set) -> str:
    while True:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        name += rng.choice(["", "_" + rng.choice(_SYLLABLES), str(rng.randint(0, 9))])
        if name not in used and name not in _KEEP:
            used.add(name)
            return name


def _local_names(tree: ast.AST) -> set:
    """Names the program binds itself (variables, parameters, functions, classes)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names - _KEEP


def _token_edits(source: str, rng: random.Random, *, numbers: float) -> str:
    """Rename local names, change a share ``numbers`` of the constants, drop the comments."""
    names = _local_names(ast.parse(source))
    used: set = set()
    mapping = {n: _new_name(rng, used) for n in sorted(names)}
    lines = source.splitlines(keepends=True)
    edits = []  # (row, col_start, col_end, text)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1].string if i else ""
        if tok.type == tokenize.NAME and tok.string in mapping and prev != ".":
            edits.append((*tok.start, tok.end[1], mapping[tok.string]))
        elif tok.type == tokenize.NUMBER and rng.random() < numbers and tok.start[0] == tok.end[0]:
            value = (str(rng.randint(2, 99)) if "." not in tok.string and "e" not in tok.string.lower()
                     else f"{rng.uniform(0.01, 9):.{rng.randint(1, 3)}f}")
            edits.append((*tok.start, tok.end[1], value))
        elif tok.type == tokenize.COMMENT:
            edits.append((*tok.start, tok.end[1], ""))
    for row, start, end, text in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + text + line[end:]
    return "".join(line if line.strip() or not line.endswith("\n") else "\n" for line in lines)


def _generated_statement(rng: random.Random, names: list) -> str:
    v = [rng.choice(names) if names and rng.random() < 0.7 else _new_name(rng, set()) for _ in range(3)]
    n, m = rng.randint(1, 64), rng.randint(65, 999)
    return rng.choice([
        f"{v[0]} = {v[1]} * {n}",
        f"{v[0]} = max({v[1]}, {n}) - min({v[2]}, {m})",
        f"{v[0]} = [{v[1]} for {v[2]} in range({n})]",
        f"print({v[0]}, {n}, file=sys.stderr)",
        f"{v[0]} += {n}",
        f"assert {v[0]} is not None, {n}",
        f"{v[0]} = ({v[1]}, {n}, {m})",
        f"{v[0]} = {v[1]}[{n}:{m}]",
        f"{v[0]} = {{{n}: {v[1]}, {m}: {v[2]}}}",
        f"if {v[0]} > {n}:\n    {v[1]} = {m}",
        f"{v[0]} = abs({v[1]} - {n}) / {m}",
        f"{v[0]} = sorted({v[1]}, reverse={rng.choice(['True', 'False'])})[:{n}]",
    ])


def _comment(rng: random.Random) -> str:
    words = ["check", "the", "labels", "digits", "twin", "here", "we", "copy", "score", "train",
             "model", "pixels", "flag", "loop", "over", "note", "fix", "later", "keep", "best"]
    return "# " + " ".join(rng.choice(words) for _ in range(rng.randint(2, 7)))


def _line_edits(source: str, rng: random.Random, *, insert: float, delete: float, comments: float,
                reorder: bool) -> str:
    """Reorder top-level functions; add generated statements and comments; delete simple statements."""
    tree = ast.parse(source)
    lines = source.splitlines()
    names = sorted(_local_names(tree))
    before: dict = {}  # line index -> lines to put before it
    dropped: set = set()

    def visit(body):
        kept = len(body)
        for i, stmt in enumerate(body):
            row = stmt.lineno - 1
            indent = lines[row][: len(lines[row]) - len(lines[row].lstrip())]
            docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            if lines[row].lstrip().startswith("@") or len(indent) != stmt.col_offset or (docstring and i == 0):
                pass  # decorated, not the line's first statement, or a docstring: leave alone
            else:
                extra = []
                if rng.random() < comments:
                    extra.append(indent + _comment(rng))
                if rng.random() < insert:
                    extra += [indent + s for s in _generated_statement(rng, names).splitlines()]
                before.setdefault(row, []).extend(extra)
                simple = isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Expr)) and stmt.lineno == stmt.end_lineno
                if simple and not docstring and kept > 1 and rng.random() < delete:
                    dropped.add(row)
                    kept -= 1
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    visit(inner)
            for handler in getattr(stmt, "handlers", []):
                visit(handler.body)

    visit(tree.body)

    def render(rows):
        out = []
        for row in rows:
            out += before.get(row, [])
            if row not in dropped:
                out.append(lines[row])
        return out

    # Top-level segments: each statement with the comment/blank lines above it.
    bounds = [(0 if i == 0 else tree.body[i - 1].end_lineno, s.end_lineno) for i, s in enumerate(tree.body)]
    segments = [(stmt, list(range(a, b))) for stmt, (a, b) in zip(tree.body, bounds)]
    defs = [i for i, (stmt, _) in enumerate(segments) if isinstance(stmt, (ast.FunctionDef, ast.ClassDef))]
    order = list(range(len(segments)))
    if reorder and len(defs) > 1:
        shuffled = defs[:]
        rng.shuffle(shuffled)
        for slot, seg in zip(defs, shuffled):
            order[slot] = seg
    out = []
    for i in order:
        out += render(segments[i][1])
        if isinstance(segments[i][0], (ast.FunctionDef, ast.ClassDef)):
            out += ["", ""]
    tail = tree.body[-1].end_lineno if tree.body else 0
    out += lines[tail:]
    text = "\n".join(out).strip("\n") + "\n"
    return re.sub(r"\n(?:[ \t]*\n){3,}", "\n\n\n", text)  # at most two blank lines in a row


def _new_docstrings(source: str, rng: random.Random) -> str:
    """The module's and functions' docstrings rewritten (one line of the student's own words)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    spans = []
    for node in [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            spans.append(body[0])
    for doc in sorted(spans, key=lambda d: -d.lineno):
        first = lines[doc.lineno - 1]
        indent = first[: len(first) - len(first.lstrip())]
        lines[doc.lineno - 1: doc.end_lineno] = [f'{indent}"""{_comment(rng)[2:].capitalize()}."""\n']
    return "".join(lines)


def independent_variant(base: str, rng: random.Random) -> str:
    """A student's own program: a base program with many edits of its own."""
    source = _token_edits(_new_docstrings(base, rng), rng, numbers=0.6)
    return _line_edits(source, rng, insert=0.45, delete=0.2, comments=0.3, reorder=True)


def disguised_copy(program: str, rng: random.Random) -> str:
    """What a copier hands in: renamed, reordered, new comments, a few lines added and removed."""
    source = _token_edits(_new_docstrings(program, rng), rng, numbers=0.0)
    n_statements = sum(isinstance(n, ast.stmt) for n in ast.walk(ast.parse(source)))
    return _line_edits(source, rng, insert=2.5 / n_statements, delete=2.0 / n_statements,
                       comments=0.15, reorder=True)


def author_block(rng: random.Random, student: str) -> str:
    aid = rng.choice(["none", "lecture notes", "numpy docs", "office hours", "the course's lessons"])
    return f"# Author: {student.title()}\n# Netid: {student}\n# Aid: {aid}\n"


def make_class(folder: Path, size: int, seed: int) -> set:
    """Write ``size`` students to ``folder``; return the planted pairs as frozensets."""
    rng = random.Random(seed)
    bases, filled_stub = base_programs()
    n_planted = max(3, size // 20)
    n_stub = max(1, size // 20)
    students = [f"s{i:04d}" for i in rng.sample(range(10 * size), size)]
    originals, copiers = students[:n_planted], students[n_planted:2 * n_planted]
    programs = {}
    for k, student in enumerate(students[2 * n_planted:] + originals):
        if k < n_stub:
            body = "\n".join("    " + _generated_statement(rng, ["images", "labels", "found"]).replace("\n", "\n    ")
                             for _ in range(rng.randint(2, 5)))
            stub = filled_stub(student.title(), student)
            todo = "    # YOUR CODE HERE"
            at = stub.index(todo)
            programs[student] = stub[:at] + body + "\n" + stub[at:]
        else:
            programs[student] = author_block(rng, student) + independent_variant(rng.choice(bases), rng)
    for original, copier in zip(originals, copiers):
        body = programs[original].split("\n", 3)[3]  # the copier writes his own author block
        programs[copier] = author_block(rng, copier) + disguised_copy(body, rng)
    for student, source in programs.items():
        (folder / student).mkdir(parents=True)
        (folder / student / "hw02.py").write_text(source, encoding="utf-8")
    return {frozenset(p) for p in zip(originals, copiers)}


# ----------------------------------------------------------------------------- the benchmark
def measure(size: int, seed: int, say) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        planted = make_class(tmp / "submissions", size, seed)
        start = time.perf_counter()
        rows = similarity_report(tmp / "submissions", tmp / "similarity.csv", html=tmp / "similarity.html",
                                 log=lambda m: None)
        seconds = time.perf_counter() - start
        html_kb = (tmp / "similarity.html").stat().st_size / 1024
    top = {frozenset((r["student_a"], r["student_b"])) for r in rows[: len(planted)]}
    scores = {frozenset((r["student_a"], r["student_b"])): r["similarity"] for r in rows}
    unplanted = [s for p, s in scores.items() if p not in planted]
    planted_scores = [scores.get(p, 0.0) for p in planted]
    result = {"size": size, "seconds": round(seconds, 1), "recall": round(len(top & planted) / len(planted), 3),
              "planted": len(planted), "flagged": len(rows),
              "max_unplanted": max(unplanted, default=0.0), "min_planted": min(planted_scores)}
    say(f"{size:5d} students  {seconds:6.1f} s  planted pairs {len(planted):3d}  found in top {len(planted)}: "
        f"{result['recall']:.0%}  flagged pairs {len(rows):3d}  lowest planted {result['min_planted']:.2f}  "
        f"highest other {result['max_unplanted']:.2f}  (HTML {html_kb:.0f} kB)")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON line last")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    results = [measure(size, args.seed + size, say) for size in args.sizes]
    big = [r for r in results if r["size"] >= TARGET_SIZE]
    target_met = bool(big) and all(r["seconds"] < TARGET_SECONDS for r in big) and all(r["recall"] == 1.0 for r in results)
    say(f"target ({TARGET_SIZE} submissions under {TARGET_SECONDS:.0f} s, every planted pair found): "
        f"{'met' if target_met else 'NOT met'}")
    if args.json:
        print(json.dumps({
            "class_sizes": [r["size"] for r in results], "seconds": [r["seconds"] for r in results],
            "recall_at_planted": [r["recall"] for r in results],
            "planted_pairs": [r["planted"] for r in results], "flagged_pairs": [r["flagged"] for r in results],
            "max_unplanted_similarity": [r["max_unplanted"] for r in results],
            "min_planted_similarity": [r["min_planted"] for r in results], "target_met": target_met}))


if __name__ == "__main__":
    main()
