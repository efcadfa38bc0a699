"""Jupyter Server settings of every ``noisylabels lab`` server (students' and instructors').

A Content-Security-Policy on every page the server sends, as a second wall behind the
sanitizing of student content (``autograder/nbgrader_plugins/preprocessors.py``). The
strictest policy under which JupyterLab and nbgrader's formgrader both work, measured in
Chromium: JupyterLab 4 needs ``'unsafe-eval'`` (its plugins compile JSON schemas: without
it most plugins fail to activate); formgrader needs ``'unsafe-inline'`` (its pages define
``base_url`` and the grading buttons in inline scripts and ``onclick`` attributes; without
it nothing can be graded). So script in a page cannot be forbidden here; the policy stops
what it can: no plugin objects, no ``<base>`` that redirects relative URLs, no form posted
or fetch/XHR/WebSocket/image/font loaded from another host (nothing taken out to an
attacker's server), no framing of the server's pages by another site.
"""

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "frame-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])

c = get_config()  # noqa: F821 (provided by Jupyter)
c.ServerApp.tornado_settings = {"headers": {"Content-Security-Policy": CONTENT_SECURITY_POLICY}}
