"""Upstream adapters: every model behind one interface (base.py), created by name from a registry."""
