"""The nbgrader integration (configured in ``nbgrader_config.py``).

- ``kernel_sandbox``: autograde's notebook kernels run in the grading sandbox;
- ``outside_kernel`` with ``check_data``: grade cells scored in the nbgrader process from the
  data a kernel reports, by the ``hwNN_grading`` modules;
- ``grading_edition``: the library's reference implementations withheld from those kernels;
- ``preprocessors``: restoring locked cells, hiding hidden tests in the feedback, student
  content made inert in every page rendered from a submission;
- ``submission_checks``: a submitted folder that is not regular files only is refused before
  nbgrader copies anything of it;
- ``release_stubs``: reference scripts replaced by stubs at release;
- ``class_autograde``: ``noisylabels autograde``, a class graded by nbgrader in parallel on Dask.
"""
