"""nbgrader settings for ``noisylabels lab --instructor`` only (read before the course's
own ``nbgrader_config.py``, which has the last word).

The exchange folder (release, fetch, submit, collect) is ``$NOISYLABELS_EXCHANGE``, which
``noisylabels lab --instructor`` sets to the exchange nbgrader's command-line tools use
(``noisylabels.lab.exchange_root``): on a class server the system ``nbgrader_config.py``'s
``Exchange.root`` (``deploy/install.sh`` writes it), on a laptop trial the course's own
``exchange/`` (created by ``noisylabels lab --instructor``; nbgrader's default,
``/usr/local/share/nbgrader/exchange``, cannot be created by an ordinary user, and the
Assignment List would show "The exchange directory does not exist").
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)
c.Exchange.root = os.environ.get(
    "NOISYLABELS_EXCHANGE",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "exchange"),
)
