"""The grading sandbox's cost per submission: the same programs run isolated and plain.

Runs each program ``--repeats`` times through :func:`autograder.hw02.rules.run_submission`
(the isolated sandbox, as the graders run submissions) and through the same function in
its ``unsafe`` mode (plain ``setrlimit`` and a scratch folder: what the grader did before
the sandbox), alternating, on homework 2's debugging file:

- ``import``: a program that imports NumPy, PyTorch and ``mnist_util`` and prints nothing
  (start-up only: where the overhead shows most);
- ``reference``: the reference solution (a real submission's work);
- ``true``: ``/bin/true`` through :func:`autograder.sandbox.run_sandboxed` itself (the
  sandbox's own cost per run: namespaces, mounts, seccomp filter, keyrings, cgroup).

It reports the median seconds of each and the overhead (isolated minus plain). Target
(issue 10): overhead under 1 s a submission. Time: about 2 minutes with the defaults.
``--json`` prints only the JSON line:
``{"programs": {name: {"isolated_s", "plain_s", "overhead_s"}}, "repeats": n, "target_met": bool}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from autograder import sandbox
from autograder.hw02 import rules

ROOT = Path(__file__).resolve().parent.parent
HW02_DIR = ROOT / "solutions" / rules.HW02
IMPORT_ONLY = "import numpy, torch, mnist_util\nprint('')\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))
    data, labels = HW02_DIR / "bad_digits_ubyte.gz", HW02_DIR / "bad_labels_ubyte.gz"
    helpers = rules.course_helpers(HW02_DIR)
    report = {"programs": {}, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        importer = Path(tmp) / "hw02.py"
        importer.write_text(IMPORT_ONLY)
        for name, program in (("import", importer), ("reference", HW02_DIR / "hw02.py"), ("true", None)):
            times = {"isolated": [], "plain": []}
            for _ in range(args.repeats if program else 4 * args.repeats):
                for mode in ("isolated", "plain"):
                    start = time.perf_counter()
                    if program is None:
                        run = sandbox.run_sandboxed(["true"], wall_seconds=10, unsafe=(mode == "plain"))
                        status, reason = ("ok" if run.returncode == 0 else "failed"), run.returncode
                    else:
                        run = rules.run_submission(program, data, labels, helpers=helpers, n_digits=165,
                                                   unsafe=(mode == "plain"))
                        status, reason = run.status, run.reason
                    elapsed = time.perf_counter() - start  # everything the grader waits for
                    if status != "ok":
                        raise SystemExit(f"{name} ({mode}) did not run: {reason}\n{run.stderr_tail}")
                    times[mode].append(elapsed)
            iso, plain = statistics.median(times["isolated"]), statistics.median(times["plain"])
            report["programs"][name] = {"isolated_s": round(iso, 3), "plain_s": round(plain, 3),
                                        "overhead_s": round(iso - plain, 3)}
            say(f"{name:10} isolated {iso:6.2f} s   plain {plain:6.2f} s   overhead {iso - plain:+.2f} s")
    report["target_met"] = all(p["overhead_s"] < 1.0 for p in report["programs"].values())
    say(f"target (overhead under 1 s a submission): {'met' if report['target_met'] else 'NOT met'}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
