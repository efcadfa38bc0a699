"""Near-identical homework 2 submissions, found for the instructor (MOSS-style winnowing).

    python -m autograder.hw02.similarity SUBMISSIONS_DIR --out similarity.csv \\
        [--html similarity.html] [--threshold 0.5] [--boilerplate FILE ...] [--no-default-boilerplate]

``SUBMISSIONS_DIR/<student>/hw02.py`` (or nbgrader's ``<student>/hw02_evil_twins/hw02.py``)
for every student. Every pair of programs is compared with the ``copydetect`` package:
each program is tokenized (names become ``V``/``F``, strings ``S``; comments, docstrings
and layout are dropped), its k-grams are hashed and winnowed, and two programs match
where they share fingerprints, wherever those sit in the file. Renamed variables,
changed comments and reordered functions therefore do not hide a copy. Fingerprints of
the released starter code (the ``hw02.py`` stub, ``train_linear_mnist.py``,
``mnist_util.py``) are removed first, so students who merely started from it do not
match each other.

Every program is also compared with the code the course publishes (the reference
``hw02.py``, ``noisylabels/detection.py``, the code cells of ``lessons/*.ipynb``): a
student whose program largely matches it gets a row of its own, ``student_b`` being
``published: <file>`` and the similarity the share of the student's file that matches.
Published code is not subtracted: copying it is what the row reports.

A pair's ``similarity`` is the larger of the two shares "matched tokens / the file's own
(non-starter) tokens", where a file's own tokens count as at least :data:`MIN_TOKENS` so
that a few identical lines added to two otherwise untouched stubs cannot reach 100 %.
Pairs at or above the threshold go to the CSV (``student_a, student_b, similarity,
aid_a, aid_b``), most similar first; ``aid_*`` is the Aid of the student's author block
(empty when there is none). Cells that a spreadsheet would read as a formula are
escaped (:func:`autograder.hw02.csv_safe.csv_safe`). The HTML view shows each pair side by side, matched regions
highlighted. Similarity is a reason to look, never a verdict or a grade.
"""

from __future__ import annotations

import argparse
import csv
import html as html_lib
import io
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.hw02.author_block import AuthorBlock, check_author_block
from autograder.hw02.csv_safe import csv_safe_row
from autograder.submission import SubmissionRefused, read_regular_file

__all__ = [
    "COLUMNS",
    "DEFAULT_THRESHOLD",
    "MIN_TOKENS",
    "Submission",
    "PUBLISHED",
    "default_boilerplate",
    "published_code",
    "find_submissions",
    "compare_submissions",
    "similarity_report",
    "main",
]

COLUMNS = ["student_a", "student_b", "similarity", "aid_a", "aid_b"]

#: Pairs at or above this similarity are reported.
DEFAULT_THRESHOLD = 0.5
#: copydetect's noise threshold k: the shortest match counted, in characters of the
#: tokenized code (``V=V.V(V)`` is 8); about two lines of ordinary code.
NOISE_TOKENS = 25
#: copydetect's guarantee threshold: every match this long is found (window 1: all k-grams).
GUARANTEE_TOKENS = 25
#: The smallest denominator of a file's share (about 15 lines of code of its own).
MIN_TOKENS = 200
#: Larger ``hw02.py`` files are skipped (a program, not a data dump).
MAX_BYTES = 1_000_000

PROGRAM = "hw02.py"
#: How a published file is named in the report's ``student_b`` column.
PUBLISHED = "published: "
_NBGRADER_FOLDER = "hw02_evil_twins"


@dataclass
class Submission:
    """One student's program: its text, author block and copydetect fingerprint."""

    student: str
    path: Path
    text: str
    block: AuthorBlock
    fingerprint: object = field(repr=False, default=None)


# ----------------------------------------------------------------------------- inputs
def default_boilerplate() -> list:
    """The released starter code as ``(name, text)``: the stub and the two course files."""
    from noisylabels.evil_twins import HW02, STUDENT_STUB

    folder = Path(__file__).resolve().parents[2] / "solutions" / HW02
    sources = [("hw02.py (released stub)", STUDENT_STUB)]
    for name in ("train_linear_mnist.py", "mnist_util.py"):
        path = folder / name
        if path.exists():
            sources.append((name, path.read_text(encoding="utf-8")))
    return sources


def published_code() -> list:
    """The code the course publishes as ``(name, text)``: the reference ``hw02.py``,
    ``noisylabels/detection.py`` and the code cells of every lesson (``lessons/*.ipynb``)."""
    from noisylabels.evil_twins import HW02

    root = Path(__file__).resolve().parents[2]
    sources = []
    for name in (f"solutions/{HW02}/hw02.py", "noisylabels/detection.py"):
        if (root / name).is_file():
            sources.append((name, (root / name).read_text(encoding="utf-8")))
    for lesson in sorted((root / "lessons").glob("*.ipynb")):
        cells = json.loads(lesson.read_text(encoding="utf-8")).get("cells", [])
        code = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                for c in cells if c.get("cell_type") == "code"]
        sources.append((f"lessons/{lesson.name}", "\n\n".join(code)))
    return sources


def _read_program(path: Path) -> tuple:
    """(text or None, problem or None) for one ``hw02.py``, never following a link."""
    try:
        data = read_regular_file(path, MAX_BYTES)
    except SubmissionRefused as refused:
        return None, f"refused ({'; '.join(refused.problems)}): skipped"
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err}): skipped"
    if b"\0" in data:
        return None, "binary file, not Python source: skipped"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        # Compared all the same: a stray Latin-1 byte must not hide a copy.
        return data.decode("utf-8", errors="replace"), (
            f"not UTF-8 (byte {err.start}): compared with the undecodable bytes replaced")


def find_submissions(submissions_dir) -> tuple:
    """``({student: text}, [problem, ...])`` for the student folders of ``submissions_dir``."""
    root = Path(submissions_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"submissions folder {str(root)!r} does not exist or is not a folder")
    texts, problems = {}, []
    for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        links = [p for p in (folder, folder / _NBGRADER_FOLDER) if p.is_symlink()]
        if links:  # a link is never followed, not even to read a program for the report
            problems.append(f"{folder.name}: {links[0].relative_to(root)} is a symbolic link: skipped")
            continue
        if not folder.is_dir():
            continue
        path = next((p for p in (folder / PROGRAM, folder / _NBGRADER_FOLDER / PROGRAM) if os.path.lexists(p)), None)
        if path is None:
            problems.append(f"{folder.name}: no {PROGRAM}: skipped")
            continue
        text, problem = _read_program(path)
        if problem:
            problems.append(f"{folder.name}: {PROGRAM} {problem}")
        if text is not None:
            texts[folder.name] = (path, text)
    return texts, problems


# ----------------------------------------------------------------------------- comparison
def _fingerprint(name: str, text: str, boilerplate_hashes: set):
    """copydetect's fingerprint of ``text`` with the boilerplate's k-grams removed."""
    from copydetect import CodeFingerprint
    from copydetect.utils import get_token_coverage

    window = GUARANTEE_TOKENS - NOISE_TOKENS + 1
    fp = CodeFingerprint(name, NOISE_TOKENS, window, filter=True, language="python",
                         fp=io.StringIO(text))
    if boilerplate_hashes:
        # Removed here rather than by copydetect's own boilerplate argument: it uses
        # np.intersect1d(assume_unique=True) on hashes that may repeat, which also drops
        # k-grams a file merely repeats.
        fp.hashes = fp.hashes - boilerplate_hashes
        fp.hash_idx = {h: i for h, i in fp.hash_idx.items() if h not in boilerplate_hashes}
        fp.token_coverage = get_token_coverage(fp.hash_idx, NOISE_TOKENS, len(fp.filtered_code))
    return fp


def _boilerplate_hashes(sources) -> set:
    from copydetect import CodeFingerprint

    hashes: set = set()
    for name, text in sources:
        hashes |= CodeFingerprint(name, NOISE_TOKENS, 1, filter=True, language="python",
                                  fp=io.StringIO(text)).hashes
    return hashes


def _load_boilerplate(files) -> list:
    sources = []
    for f in files or ():
        path = Path(f)
        if not path.is_file():
            raise FileNotFoundError(f"boilerplate file {str(path)!r} does not exist")
        sources.append((path.name, path.read_bytes().decode("utf-8", errors="replace")))
    return sources


def _pair(a: Submission, b: Submission, *, own_share_only: bool = False):
    """The pair's dict (see :func:`compare_submissions`), or ``None`` if they share nothing.

    ``own_share_only``: the similarity is ``a``'s matched share alone (``b`` is published
    code, much larger than a program that copies part of it)."""
    from copydetect import compare_files

    fa, fb = a.fingerprint, b.fingerprint
    if not fa.hashes & fb.hashes:
        return None
    _, (sim_a, sim_b), (slices_a, slices_b) = compare_files(fa, fb)
    share_a = sim_a * fa.token_coverage / max(fa.token_coverage, MIN_TOKENS)
    share_b = sim_b * fb.token_coverage / max(fb.token_coverage, MIN_TOKENS)
    similarity = round(float(share_a if own_share_only else max(share_a, share_b)), 3)
    return {"student_a": a.student, "student_b": b.student, "similarity": similarity,
            "aid_a": a.block.aid or "", "aid_b": b.block.aid or "",
            "share_a": float(share_a), "share_b": float(share_b),
            "slices_a": slices_a, "slices_b": slices_b}


def compare_submissions(subs: list, threshold: float = DEFAULT_THRESHOLD, published=()) -> list:
    """Pairs of :class:`Submission` at or above ``threshold``, most similar first.

    Each pair is a dict: the CSV's columns plus ``share_a``/``share_b`` (each file's
    matched share) and ``slices_a``/``slices_b`` (matched character ranges, for the HTML).
    Every submission is also paired with each of ``published`` (Submissions of published
    code, see :func:`published_code`), scored by the submission's own matched share.
    """
    subs = sorted(subs, key=lambda s: s.student)
    candidates = [_pair(a, b) for a, b in itertools.combinations(subs, 2)]
    candidates += [_pair(a, b, own_share_only=True) for a in subs for b in published]
    pairs = [p for p in candidates if p is not None and p["similarity"] >= threshold]
    pairs.sort(key=lambda p: (-p["similarity"], p["student_a"], p["student_b"]))
    return pairs


# ----------------------------------------------------------------------------- outputs
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table.pairs { border-collapse: collapse; } table.pairs td, table.pairs th { padding: 2px 10px; text-align: left; }
.pair { border-top: 2px solid #888; margin-top: 1.5em; }
.side { display: flex; gap: 1em; } .side > div { flex: 1; min-width: 0; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; font-size: 12px; }
mark { background: #f5b7b1; } .ok { color: #1e7e34; } .bad { color: #b03a2e; }
"""


def _block_html(sub: Submission) -> str:
    b = sub.block
    cls = "ok" if b.status == "ok" else "bad"
    reason = f" ({html_lib.escape(b.reason)})" if b.reason else ""
    return (f"author block: <span class='{cls}'>{b.status}</span>{reason}<br>"
            f"Aid: <i>{html_lib.escape(b.aid or '(none given)')}</i>")


def _highlighted(text: str, slices) -> str:
    from copydetect.utils import highlight_overlap

    marked, _ = highlight_overlap(text, slices, "<mark>", "</mark>", escape_html=True)
    return marked


def write_html(path, pairs: list, subs: dict, *, threshold: float, problems: list,
               boilerplate_names: list) -> None:
    """A self-contained page: a table of the pairs, then each pair side by side."""
    esc = html_lib.escape
    rows = "".join(
        f"<tr><td><a href='#pair{i}'>{i}</a></td><td>{esc(p['student_a'])}</td>"
        f"<td>{esc(p['student_b'])}</td><td>{p['similarity']:.0%}</td></tr>"
        for i, p in enumerate(pairs, 1))
    sections = []
    for i, p in enumerate(pairs, 1):
        a, b = subs[p["student_a"]], subs[p["student_b"]]
        sections.append(
            f"<div class='pair' id='pair{i}'><h2>{i}. {esc(a.student)} &harr; {esc(b.student)}: "
            f"{p['similarity']:.0%}</h2><div class='side'>"
            f"<div><h3>{esc(a.student)}</h3><p>{p['share_a']:.0%} of this file matches.<br>"
            f"{_block_html(a)}</p><pre>{_highlighted(a.text, p['slices_a'])}</pre></div>"
            f"<div><h3>{esc(b.student)}</h3><p>{p['share_b']:.0%} of this file matches.<br>"
            f"{_block_html(b)}</p><pre>{_highlighted(b.text, p['slices_b'])}</pre></div>"
            f"</div></div>")
    notes = "".join(f"<li>{esc(m)}</li>" for m in problems) or "<li>none</li>"
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Homework 2: similar submissions</title>
<style>{_STYLE}</style></head><body>
<h1>Homework 2: similar submissions</h1>
<p>{sum(not name.startswith(PUBLISHED) for name in subs)} programs compared (with each other and with the
course's published code); {len(pairs)} pairs at or above {threshold:.0%}, most similar first.
Highlighted: code the two programs share (after names, comments and layout are ignored and the
starter code is removed: {esc(", ".join(boilerplate_names)) or "none"}).
Similarity is a reason to look, not a verdict.</p>
<table class="pairs"><tr><th>#</th><th>student a</th><th>student b</th><th>similarity</th></tr>{rows}</table>
<h2>Not compared or compared with care</h2><ul>{notes}</ul>
{"".join(sections)}
<p><small>Fingerprints: copydetect (winnowing, k = {NOISE_TOKENS}).</small></p>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")


def similarity_report(submissions_dir, out_csv, html=None, threshold: float = DEFAULT_THRESHOLD,
                      boilerplate=None, *, default_boilerplate_files: bool = True,
                      compare_published: bool = True, log=print) -> list:
    """Compare every pair of ``SUBMISSIONS_DIR/<student>/hw02.py``; write the CSV (and HTML).

    ``boilerplate`` lists extra starter files to subtract, on top of the released starter
    code (unless ``default_boilerplate_files=False``). Students whose program is missing,
    binary or too large are left out with a message through ``log``; the other pairs are
    still reported. With ``compare_published`` (the default) every program is also compared
    with :func:`published_code`. Returns the CSV's rows (dicts with :data:`COLUMNS`), most
    similar first.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a share in (0, 1], got {threshold!r}")
    start = time.monotonic()
    texts, problems = find_submissions(submissions_dir)
    sources = default_boilerplate() if default_boilerplate_files else []
    if default_boilerplate_files and len(sources) < 3:
        problems.append("the course's train_linear_mnist.py / mnist_util.py were not found: "
                        "only the hw02.py stub is subtracted as starter code")
    sources += _load_boilerplate(boilerplate)
    hashes = _boilerplate_hashes(sources)
    subs = {student: Submission(student, path, text, check_author_block(text),
                                _fingerprint(str(path), text, hashes))
            for student, (path, text) in texts.items()}
    if not subs:
        problems.append(f"no {PROGRAM} to compare in {str(submissions_dir)!r}")
    elif len(subs) == 1:
        problems.append("only one program: no pairs to compare")
    published = {PUBLISHED + name: Submission(PUBLISHED + name, Path(name), text, check_author_block(text),
                                              _fingerprint(name, text, hashes))
                 for name, text in (published_code() if compare_published else [])}
    pairs = compare_submissions(list(subs.values()), threshold, published=list(published.values()))

    rows = [{c: p[c] for c in COLUMNS} for p in pairs]
    out_csv = Path(out_csv)
    with open(out_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(csv_safe_row({**r, "similarity": f"{r['similarity']:.3f}"}) for r in rows)
    if html is not None:
        write_html(html, pairs, {**subs, **published}, threshold=threshold, problems=problems,
                   boilerplate_names=[name for name, _ in sources])
    for message in problems:
        log(f"similarity: {message}")
    log(f"similarity: {len(subs)} programs, {len(rows)} pairs at or above {threshold:.0%} "
        f"({time.monotonic() - start:.1f} s) -> {out_csv}" + (f", {html}" if html else ""))
    return rows


# ----------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.hw02.similarity",
        description="Report pairs of near-identical hw02.py submissions (copydetect winnowing).")
    parser.add_argument("submissions", help="folder with one sub-folder per student holding hw02.py")
    parser.add_argument("--out", required=True, help="CSV to write (student_a, student_b, similarity, aid_a, aid_b)")
    parser.add_argument("--html", help="also write a side-by-side HTML view here")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"report pairs at or above this share (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--boilerplate", nargs="+", action="extend", default=[], metavar="FILE",
                        help="more starter code to ignore (added to the released starter code)")
    parser.add_argument("--no-default-boilerplate", action="store_true",
                        help="do not subtract the released starter code")
    parser.add_argument("--no-published", action="store_true",
                        help="do not compare with the course's published code (reference, library, lessons)")
    args = parser.parse_args(argv)
    try:
        rows = similarity_report(args.submissions, args.out, html=args.html, threshold=args.threshold,
                                 boilerplate=args.boilerplate,
                                 default_boilerplate_files=not args.no_default_boilerplate,
                                 compare_published=not args.no_published)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for r in rows[:10]:
        print(f"  {r['similarity']:.0%}  {r['student_a']}  {r['student_b']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
