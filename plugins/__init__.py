"""Plugins shipped with monkey_py; each is loaded through its entry point like any other."""
