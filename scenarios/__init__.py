"""Marks `scenarios/` as the data package `replaylib.data.scenarios` (mapped in setup.py).

Every file below this folder ships inside the wheel and the sdist and is found
with importlib.resources (see replaylib/data/__init__.py); nothing here is code.
"""
