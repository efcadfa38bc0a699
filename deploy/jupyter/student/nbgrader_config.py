"""nbgrader settings of the students' servers on the class hub: ``deploy/jupyterhub_config.py``
puts this folder first on ``JUPYTER_CONFIG_PATH``, so what it sets wins over the system
``nbgrader_config.py`` (which gives the course id and the exchange).

Validate runs the notebook with the course's per-cell limit (the course's own
``nbgrader_config.py``, which students cannot read, sets the same for grading): nbgrader's
default of 30 s stops homework 1's curve cell, so a finished homework would fail Validate.
"""

c = get_config()  # noqa: F821 (provided by nbgrader)
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
