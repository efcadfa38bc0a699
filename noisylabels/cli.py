"""The ``noisylabels`` command.

- ``noisylabels build``: execute every lesson and solution notebook on the offline data
  and write the executed notebooks, HTML and figures under ``build/`` (the main job);
- ``noisylabels clean``: strip outputs and editor metadata from the committed notebooks;
- ``noisylabels assignments``: regenerate ``assignments/`` from ``solutions/`` with
  nbgrader (``--check`` only reports drift; ``--register`` also records them in the
  course's ``gradebook.db``, which ``nbgrader autograde`` needs);
- ``noisylabels lab``: JupyterLab at the course root for students (``--instructor``: with
  the nbgrader tools).
- ``noisylabels autograde ASSIGNMENT [--scheduler local:N|ADDRESS]``: grade a class with
  nbgrader, students in parallel on Dask (``autograder/nbgrader_plugins/class_autograde.py``);
- ``noisylabels hub --roster roster.csv``: a class on JupyterHub (``deploy/``), set up first if needed.
- ``noisylabels doctor``: check the permissions that keep a class's students apart on a
  shared server (``autograder/permissions.py``), each problem with the command that fixes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_build(args) -> int:
    from .build import build, format_table

    runs = build(root=args.root, out=args.out, names=args.notebooks, size=args.size,
                 timeout=args.timeout, html=not args.no_html, progress=not args.no_progress, jobs=args.jobs)
    print()
    print(format_table(runs))
    failed = [r for r in runs if r.status != "ok"]
    if not runs:
        print("no notebooks found", file=sys.stderr)
        return 1
    print(f"\n{len(runs) - len(failed)} of {len(runs)} notebooks ran; outputs in {args.out}/")
    for r in failed:
        print(f"FAILED {r.notebook}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_clean(args) -> int:
    from .course import all_notebooks, clean_notebook, find_root

    root = Path(args.root) if args.root else find_root()
    paths = [Path(p) for p in args.notebooks] or all_notebooks(root) + sorted(Path(root, "assignments").glob("*/*.ipynb"))
    changed = [p for p in paths if clean_notebook(p)]
    for p in changed:
        print(f"cleaned {p}")
    print(f"{len(changed)} of {len(paths)} notebooks changed")
    return 0


def _cmd_assignments(args) -> int:
    from .course import assignment_drift, find_root, generate_assignments

    root = Path(args.root) if args.root else find_root()
    if args.check:
        problems = assignment_drift(root)
        for p in problems:
            print(p)
        print("assignments/ matches solutions/" if not problems else f"{len(problems)} difference(s)")
        return 1 if problems else 0
    for folder in generate_assignments(root, names=args.names or None, register=args.register):
        print(f"generated {folder.relative_to(root)}" + (" (registered in the gradebook)" if args.register else ""))
    return 0


def _cmd_lab(args) -> int:
    from . import lab
    from .course import find_root

    root = Path(args.root) if args.root else find_root()
    threads = lab.default_threads() if args.threads is None else (args.threads or None)
    return lab.main(root, instructor=args.instructor, threads=threads, extra=args.jupyter_args,
                    print_only=args.print_command)


def _cmd_doctor(args) -> int:
    from autograder.permissions import doctor
    from .course import find_root
    from .lab import exchange_root

    course = Path(args.course or args.root or find_root())
    exchange = args.exchange or exchange_root(course)[0]
    return doctor(course, exchange, instructor=args.instructor, group=args.group, roster=args.roster,
                  config_dirs=args.config_dir or None, verbose=args.verbose)


def _cmd_autograde(args) -> int:
    from autograder.nbgrader_plugins import class_autograde

    return class_autograde.run(args)


def _cmd_hub(args) -> int:
    from . import hub

    return hub.run(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="noisylabels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="course repository (default: found from the current folder)")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="execute every lesson and solution notebook into build/")
    b.add_argument("notebooks", nargs="*", help="only notebooks whose path contains one of these")
    b.add_argument("--out", default="build", help="output folder (default: build)")
    b.add_argument("--size", choices=["quick", "default", "full"],
                   help="experiment size for every notebook (default: NOISYLABELS_SIZE or 'default')")
    b.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take (default 1800)")
    b.add_argument("--jobs", type=int, default=None,
                   help="notebooks run at once (default: one a core on a machine with at most 4 cores, else 1)")
    b.add_argument("--no-html", action="store_true", help="skip the HTML pages")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_build)

    c = sub.add_parser("clean", help="strip outputs and editor metadata from notebooks")
    c.add_argument("notebooks", nargs="*", help="notebooks (default: all lessons, solutions, assignments)")
    c.set_defaults(func=_cmd_clean)

    a = sub.add_parser("assignments", help="regenerate assignments/ from solutions/ with nbgrader")
    a.add_argument("names", nargs="*", help="only these assignments (default: every folder of solutions/)")
    a.add_argument("--check", action="store_true", help="only report differences (always all assignments)")
    a.add_argument("--register", action="store_true",
                   help="also record the assignments in the course gradebook (nbgrader_config.py's db_url), "
                        "as nbgrader autograde needs")
    a.set_defaults(func=_cmd_assignments)

    lab = sub.add_parser("lab", help="start JupyterLab at the course root (students; --instructor for nbgrader tools)",
                         description="Start JupyterLab at the course root. Other options (say --port=8890 "
                                     "--no-browser) go to jupyter lab.")
    lab.add_argument("--instructor", action="store_true",
                     help="with nbgrader's instructor tools (formgrader, create assignment, exchange)")
    lab.add_argument("--threads", type=int, default=None,
                     help="PyTorch/BLAS threads a kernel (default: 1 on machines with up to 4 cores; 0: library default)")
    lab.add_argument("--print-command", action="store_true", help="print the command and settings, do not start")
    lab.set_defaults(func=_cmd_lab)

    d = sub.add_parser("doctor", help="check the class's permissions on a shared server, with the fixes",
                       description="Check every permission that keeps a class's students apart (course folder, "
                                   "grading outputs, exchange, home folders, environment, system nbgrader "
                                   "config); print each problem with the command that fixes it. Exit 1 if any.")
    d.add_argument("--course", help="the course folder (default: found from the current folder)")
    d.add_argument("--exchange", help="nbgrader's exchange (default: the Exchange.root nbgrader reads)")
    d.add_argument("--instructor", help="the account that should own the course (default: its owner)")
    d.add_argument("--group", default="graders", help="the grading group (default graders)")
    d.add_argument("--roster", help="the roster CSV: also check these accounts' home folders")
    d.add_argument("--config-dir", action="append",
                   help="folder of the system nbgrader_config.py (default: /etc/jupyter and the other system folders)")
    d.add_argument("-v", "--verbose", action="store_true", help="also list the checks that passed")
    d.set_defaults(func=_cmd_doctor)

    h = sub.add_parser("hub", help="start a class on JupyterHub (runs deploy/install.sh first if the set-up is missing)",
                       description="Start JupyterHub with deploy/jupyterhub_config.py for the roster's accounts, as "
                                   "root; set up what is missing first (deploy/install.sh, npm's "
                                   "configurable-http-proxy). Other options go to jupyterhub.")
    from .hub import add_arguments as _hub_arguments
    _hub_arguments(h)
    h.set_defaults(func=_cmd_hub)

    g = sub.add_parser("autograde", help="grade every submission of an assignment with nbgrader, in parallel on Dask",
                       description="Run the real nbgrader autograde for each student of submitted/*/ASSIGNMENT "
                                   "in parallel (Dask; each with a scratch gradebook), merge the results into "
                                   "the course gradebook, print a table with every failure's reason "
                                   "(autograder/nbgrader_plugins/class_autograde.py).")
    from autograder.nbgrader_plugins.class_autograde import add_arguments as _autograde_arguments
    _autograde_arguments(g)
    g.set_defaults(func=_cmd_autograde)

    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command not in ("lab", "hub"):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.jupyter_args = unknown
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
