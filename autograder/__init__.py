"""Grading code of the Noisy Labels course, in three parts (see ``autograder/README.md``).

- :mod:`autograder.sandbox`: the generic sandbox every piece of student code runs in
  (bubblewrap namespaces, an unprivileged uid, a seccomp filter, limits);
- :mod:`autograder.nbgrader_plugins`: the nbgrader integration, configured in
  ``nbgrader_config.py``: kernels in the sandbox, grading outside the kernel
  (``hwNN_grading``), the feedback and release preprocessors, submission checks;
- :mod:`autograder.hw02`: homework 2 ("evil twins") graded on its own rules, with or
  without nbgrader: the rules and output parser, the secret final data, the stand-alone
  batch grader (``python -m autograder.hw02.grade``), Dask, the similarity report and the
  author-block check.

Shared by both grading paths: :mod:`autograder.submission`, the check that a student's
submission is regular files only (no links, FIFOs, devices, hard links, oversized files)
before anything of it is read.
"""
