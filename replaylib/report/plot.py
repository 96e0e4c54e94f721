"""Pictures of recordings over simulated time (matplotlib, the ``plot`` extra).

One figure, six panels sharing the time axis (minutes of simulated time):

1. replicas per role — active (solid) against the planner's target (dashed);
2. per-GPU caps per role — applied (solid) against asked for (dashed);
3. total GPU power against the budget in force (and the provisioned watts);
4. TTFT p99 and mean against the TTFT target;
5. ITL p99 and mean against the ITL target;
6. request rate (observed and the planner's prediction).

Fault events (scenario events and actuation failures) are grey vertical lines
labelled with their type; a failed assertion is a red line at the tick its
evidence names (``first failed at tick N``), else at the end.  Several
recordings are overlaid, one colour family each, for a visual diff.

matplotlib is used through its object API with the Agg canvas (no display, no
global pyplot state); SVG output is made reproducible (fixed hash salt, no
date), PNG output carries no timestamp either.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from replaylib.errors import ReplaylibError

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from replaylib.record.reader import RecordingMeta

#: Output formats by file extension.
FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 15.0, 100  #: a PNG is WIDTH_IN*DPI x HEIGHT_IN*DPI pixels
#: One colour pair (prefill, decode) per overlaid recording.
_PALETTE = (("#1f77b4", "#ff7f0e"), ("#2ca02c", "#d62728"), ("#9467bd", "#8c564b"), ("#17becf", "#bcbd22"))
_SERIES = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf")
_TICK_RE = re.compile(r"at tick (\d+)")


class PlotError(ReplaylibError):
    """A plot that cannot be made (no matplotlib, unknown output format, nothing to draw)."""


class Recording(msgspec.Struct, frozen=True):
    """What a plot needs of one recording."""

    path: str
    label: str
    ticks: Any  #: polars DataFrame of the tick rows, with a ``minutes`` column
    faults: list[tuple[float, str]]  #: (minutes, event type)
    failures: list[tuple[float, str]]  #: (minutes, "[i] description") of failed assertions
    meta: Any  #: RecordingMeta


def output_format(path: str) -> str:
    """``png`` or ``svg`` by the extension; :class:`PlotError` for any other."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise PlotError(f"{path}: cannot draw into a {ext or 'extension-less'} file; expected one of {', '.join(FORMATS)}")
    return FORMATS[ext]


def prepare(df: pl.DataFrame, meta: RecordingMeta, *, path: str, label: str | None = None) -> Recording:
    """The plot data of one recording (``df`` as from :func:`read_recording`)."""
    import polars as pl

    from replaylib.report.summary import verdicts

    ticks = df.filter(pl.col("kind") == "tick").with_columns((pl.col("now_ms") / 60_000.0).alias("minutes"))
    if ticks.is_empty():
        raise PlotError(f"{path}: the recording has no tick rows to draw")
    at = dict(zip(ticks["tick"].to_list(), ticks["minutes"].to_list(), strict=True))
    faults = [(now / 60_000.0, str(ev)) for now, ev in df.filter(pl.col("kind") == "fault").select("now_ms", "event").iter_rows()]
    failures = []
    for v in verdicts(df):
        if not v.passed:
            m = _TICK_RE.search(v.evidence)
            tick = int(m.group(1)) if m else v.tick
            failures.append((at.get(tick, ticks["minutes"][-1]), f"[{v.index}] {v.description}"))
    return Recording(path=path, label=label or f"{meta.planner} ({os.path.basename(path)})", ticks=ticks,
                     faults=faults, failures=failures, meta=meta)


def load(path: str | os.PathLike[str], label: str | None = None) -> Recording:
    from replaylib.report.summary import load_complete

    path = os.fspath(path)
    df, meta = load_complete(path)
    return prepare(df, meta, path=path, label=label)


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'replaylib[plot]'") from None


def figure(recordings: Sequence[Recording], *, title: str | None = None) -> Figure:
    """The six-panel figure of ``recordings`` (overlaid)."""
    _matplotlib()
    from matplotlib.figure import Figure

    if not recordings:
        raise PlotError("nothing to draw: no recording given")
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = fig.subplots(6, 1, sharex=True)
    first = recordings[0].meta
    fig.suptitle(title or f"{first.scenario_name}: " + " vs ".join(r.meta.planner for r in recordings), fontsize=13)
    for i, rec in enumerate(recordings):
        _draw(axes, rec, i, overlay=len(recordings) > 1, first=first)
    labels = ("replicas", "cap per GPU (W)", "GPU power (W)", "TTFT (ms)", "ITL (ms)", "requests/s")
    for ax, label in zip(axes, labels, strict=True):
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, borderaxespad=0.0)
    axes[-1].set_xlabel("simulated time (min)")
    ttft_top = max((r.ticks["ttft_p99_ms"].max() or 0.0) for r in recordings)
    if ttft_top > 20 * max(r.meta.ttft_target_ms for r in recordings):  # queueing blow-ups: keep the target readable
        axes[3].set_yscale("log")
    return fig


def _draw(axes: Any, rec: Recording, i: int, *, overlay: bool, first: Any) -> None:
    t = rec.ticks
    x = t["minutes"].to_list()
    cp, cd = _PALETTE[i % len(_PALETTE)]
    series = _SERIES[i % len(_SERIES)]
    tag = f" · {rec.meta.planner}" if overlay else ""

    def col(name: str) -> list[Any]:
        return t[name].to_list()

    replicas, caps, power, ttft, itl, rate = axes
    for role, colour in (("prefill", cp), ("decode", cd)):
        replicas.step(x, col(f"{role}_active"), where="post", color=colour, label=f"{role} active{tag}")
        replicas.step(x, col(f"target_{role}"), where="post", color=colour, linestyle="--", alpha=0.8,
                      label=f"{role} target{tag}")
        caps.step(x, col(f"cap_{role}_w"), where="post", color=colour, label=f"{role} cap{tag}")
        caps.step(x, col(f"target_cap_{role}_w"), where="post", color=colour, linestyle="--", alpha=0.8,
                  label=f"{role} asked{tag}")
    power.plot(x, col("power_total_w"), color=series, label=f"power{tag}")
    power.step(x, col("provisioned_w"), where="post", color=series, linestyle=":", label=f"provisioned{tag}")
    if t["budget_w"].null_count() < t.height:
        power.step(x, col("budget_w"), where="post", color="black", linewidth=1.5, label=f"budget{tag}")
    for ax, name in ((ttft, "ttft"), (itl, "itl")):
        ax.plot(x, col(f"{name}_p99_ms"), color=series, label=f"{name.upper()} p99{tag}")
        ax.plot(x, col(f"{name}_mean_ms"), color=series, linestyle="--", alpha=0.8, label=f"{name.upper()} mean{tag}")
        target = getattr(rec.meta, f"{name}_target_ms")
        if i == 0 or target != getattr(first, f"{name}_target_ms"):  # one line per distinct target
            ax.axhline(target, color="black", linewidth=1.2, label=f"{name.upper()} target {target:g} ms")
    rate.plot(x, col("request_rate"), color=series, label=f"observed{tag}")
    rate.plot(x, col("predicted_rate"), color=series, linestyle="--", alpha=0.8, label=f"predicted{tag}")
    for minutes, kind in rec.faults:
        for ax in axes:
            ax.axvline(minutes, color="grey", linestyle=":", linewidth=1)
        replicas.annotate(kind, (minutes, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                          va="top", ha="right", color="dimgrey")
    for minutes, text in rec.failures:
        for ax in axes:
            ax.axvline(minutes, color="red", linewidth=1.2, alpha=0.7)
        replicas.annotate(f"FAIL {text}"[:60], (minutes, 0.0), xycoords=("data", "axes fraction"), rotation=90,
                          fontsize=7, va="bottom", ha="right", color="red")


def render(fig: Figure, fmt: str) -> bytes:
    """The figure's bytes as ``png`` or ``svg``, with nothing that varies between runs."""
    import matplotlib

    buf = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    with matplotlib.rc_context({"svg.hashsalt": "replaylib", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def plot_recordings(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, title: str | None = None) -> str:
    """Draw ``paths`` (overlaid) into ``out`` (.png or .svg), atomically; returns ``out``."""
    from replaylib.report.output import write_bytes

    out = os.fspath(out)
    fmt = output_format(out)
    data = render(figure([load(p) for p in paths], title=title), fmt)
    write_bytes(out, data)
    return out


__all__ = ["FORMATS", "PlotError", "Recording", "figure", "load", "output_format", "plot_recordings", "prepare", "render"]
