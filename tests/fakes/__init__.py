"""The shipped test doubles (:mod:`thinkstop.proxy.testing`) under the name the suite has
always used, plus an in-process upstream for orchestrator tests
(:mod:`tests.fakes.memory_upstream`)."""

from thinkstop.proxy.testing import *  # noqa: F403 - the same names, on purpose
from thinkstop.proxy.testing import __all__ as __all__
