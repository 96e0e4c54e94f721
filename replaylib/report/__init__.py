"""Reports of recordings: summaries, plots, HTML/Markdown reports and the OpenMetrics export.

Submodules are imported on use (``replaylib.report.summary``,
``replaylib.report.plot`` needs the ``plot`` extra: matplotlib), so importing
this package costs nothing.
"""
