"""Proxy-cache projects: a project bound to a registry endpoint serves what
that upstream holds and keeps a copy of whatever it served."""
