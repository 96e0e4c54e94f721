"""The report formats of ``diff`` and ``compare`` (a light module: the CLI lists them without importing polars)."""

FORMATS: tuple[str, ...] = ("text", "json", "markdown")
