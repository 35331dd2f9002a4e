"""How tests start the ``thinkstop`` command in a subprocess (the installed entry point's
module, run with this interpreter)."""

import sys

THINKSTOP = [sys.executable, "-m", "thinkstop.proxy.entrypoints.cli"]
