"""Upstream adapters: every model behind one interface (:mod:`.base`), created by name
from a registry."""
