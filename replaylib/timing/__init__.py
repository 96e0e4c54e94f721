"""Timing and power models of a system (analytic or measured tables) and the tools that make them.

``replaylib.timing.aiconfigurator`` sweeps NVIDIA's aiconfigurator estimator
over a grid and returns timing tables with their provenance (optional extra
``aic``).
"""
