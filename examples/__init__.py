"""Example code from the docs (``docs/writing_a_planner.md``); the tests import and replay it."""
