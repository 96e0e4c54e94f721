"""Seeded synthetic Mooncake-style traces, streamed one request at a time.

Arrivals follow a non-homogeneous Poisson process (thinning against the
shape's peak rate).  Input/output lengths come from clamped distributions.
Prefix structure comes from two sources:

* **system prompts** — ``prefixes.system_prompts`` prompts of
  ``prefixes.tokens`` tokens, picked with Zipf popularity; their full blocks
  are shared by every request that uses them;
* **multi-turn sessions** — with probability ``sessions.continue_prob`` a
  request continues an eligible open session: its input is the previous turn's
  input + the previous turn's output + new user tokens, and its ``hash_ids``
  begin with the previous turn's *full* blocks (the previous turn's partial
  last block is not shared).

Every block that is not shared gets a new id from one counter, so
``len(hash_ids) == ceil(input_length / block_size)`` always.  The generator
keeps at most ``sessions.max_open`` sessions, so memory stays flat however
many rows it produces.

Determinism: each aspect draws from its own ``random.Random`` seeded from
``(seed, aspect name)`` — arrivals, isl, osl, turn, prefix, session — so
changing one aspect's parameters does not shift another aspect's numbers.
No wall clock, no hash-order dependence: the same config gives the same rows
in every process.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from replaylib.errors import ReplaylibError
from replaylib.limits import MAX_GENERATED_REQUESTS
from replaylib.trace.model import Request

__all__ = [
    "GeneratorConfig",
    "GeneratorConfigError",
    "InputLengths",
    "LengthDist",
    "OutputLengths",
    "Poisson",
    "Prefixes",
    "Ramp",
    "Sessions",
    "Sine",
    "Step",
    "TurnLengths",
    "config_from_mapping",
    "generate_trace",
    "load_generator_config",
    "rate_at",
]

Rate = Annotated[float, Meta(ge=0)]
PositiveRate = Annotated[float, Meta(gt=0)]
Seconds = Annotated[float, Meta(ge=0)]
PositiveSeconds = Annotated[float, Meta(gt=0)]
Tokens = Annotated[int, Meta(ge=1)]
Probability = Annotated[float, Meta(ge=0, le=1)]


class _Config(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base of every config struct: keyword-only, immutable, unknown keys rejected."""


# --------------------------------------------------------------------------- arrivals


class _Shape(_Config, tag_field="shape"):
    """An arrival-rate shape; ``shape:`` names it in YAML."""


class Poisson(_Shape, tag="poisson"):
    """Constant rate (requests per second)."""

    rate: PositiveRate = 2.0


class Ramp(_Shape, tag="ramp"):
    """Linear from ``rate0`` to ``rate1`` over ``over_s`` seconds (default: the trace duration), then flat."""

    rate0: Rate = 0.5
    rate1: Rate = 3.0
    over_s: PositiveSeconds | None = None


class Step(_Shape, tag="step"):
    """Piecewise-constant levels ``[start_s, rate]``; the first starts at 0, starts increase."""

    levels: list[tuple[Seconds, Rate]] = msgspec.field(default_factory=lambda: [(0.0, 1.0), (600.0, 3.0), (1200.0, 1.0)])

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("levels: needs at least one [start_s, rate] level")
        if self.levels[0][0] != 0:
            raise ValueError(f"levels: the first level must start at 0, got {self.levels[0][0]}")
        for (a, _), (b, _) in zip(self.levels, self.levels[1:]):
            if b <= a:
                raise ValueError(f"levels: start times must increase, got {a} then {b}")


class Sine(_Shape, tag="sine"):
    """Diurnal: ``base + amplitude * sin(2*pi*t/period_s + phase)``, never below 0."""

    base: Rate = 2.0
    amplitude: float = 1.0
    period_s: PositiveSeconds = 1200.0
    phase: float = 0.0  #: radians


Arrivals = Poisson | Ramp | Step | Sine
_SHAPE_CLASSES: tuple[type[_Shape], ...] = (Poisson, Ramp, Step, Sine)
SHAPES: tuple[str, ...] = tuple(str(cls.__struct_config__.tag) for cls in _SHAPE_CLASSES)


def _peak_rate(a: Arrivals) -> float:
    if isinstance(a, Poisson):
        return a.rate
    if isinstance(a, Ramp):
        return max(a.rate0, a.rate1)
    if isinstance(a, Step):
        return max(rate for _, rate in a.levels)
    return max(0.0, a.base + abs(a.amplitude))


def _final_rate_positive(a: Arrivals) -> bool:
    """Whether arrivals keep coming for ever (needed when only a request count ends the trace)."""
    if isinstance(a, Ramp):
        return a.rate1 > 0
    if isinstance(a, Step):
        return a.levels[-1][1] > 0
    return _peak_rate(a) > 0


def _rate_function(a: Arrivals, duration_s: float | None) -> Callable[[float], float]:
    if isinstance(a, Poisson):
        rate = a.rate
        return lambda t: rate
    if isinstance(a, Ramp):
        r0, r1 = a.rate0, a.rate1
        span = a.over_s if a.over_s is not None else duration_s
        assert span is not None  # checked by GeneratorConfig
        return lambda t: r0 + (r1 - r0) * min(t / span, 1.0)
    if isinstance(a, Step):
        starts = [s for s, _ in a.levels]
        rates = [r for _, r in a.levels]
        return lambda t: rates[bisect_right(starts, t) - 1]
    base, amp, omega, phase = a.base, a.amplitude, 2 * math.pi / a.period_s, a.phase
    return lambda t: max(0.0, base + amp * math.sin(omega * t + phase))


def rate_at(config: GeneratorConfig, t_s: float) -> float:
    """The configured arrival rate (requests/s) at ``t_s`` seconds."""
    return _rate_function(config.arrivals, config.duration_s)(t_s)


# --------------------------------------------------------------------------- lengths


class LengthDist(_Config):
    """A token-count distribution clamped to ``[min, max]``.

    ``lognormal``: mean ``mean`` and log-space standard deviation ``sigma``
    (before clamping); ``uniform``: integers in ``[min, max]`` (``mean`` and
    ``sigma`` unused); ``fixed``: always ``round(mean)``, clamped.
    """

    dist: Literal["lognormal", "uniform", "fixed"] = "lognormal"
    mean: PositiveRate = 1000.0
    sigma: Rate = 1.0
    min: Tokens = 1
    max: Tokens = 131072

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")


class InputLengths(LengthDist):
    """ISL of a session's first turn; every input (continuations too) stays within ``[min, max]``."""

    mean: PositiveRate = 6000.0
    sigma: Rate = 0.9
    min: Tokens = 64
    max: Tokens = 65536


class OutputLengths(LengthDist):
    mean: PositiveRate = 350.0
    sigma: Rate = 0.7
    min: Tokens = 1
    max: Tokens = 4096


class TurnLengths(LengthDist):
    """New user tokens a continuation turn appends."""

    mean: PositiveRate = 400.0
    sigma: Rate = 1.0
    min: Tokens = 1
    max: Tokens = 8192


def _sampler(d: LengthDist, rng: random.Random) -> Callable[[], int]:
    lo, hi = d.min, d.max
    if d.dist == "fixed":
        value = min(max(round(d.mean), lo), hi)
        return lambda: value
    if d.dist == "uniform":
        return lambda: rng.randint(lo, hi)
    mu, sigma = math.log(d.mean) - d.sigma * d.sigma / 2, d.sigma
    draw = rng.lognormvariate
    return lambda: min(max(round(draw(mu, sigma)), lo), hi)


# --------------------------------------------------------------------------- prefixes and sessions


class Prefixes(_Config):
    """Shared system prompts: ``system_prompts`` of ``tokens`` tokens, Zipf(``zipf_s``) popularity.

    A new (non-continuation) request uses a system prompt with probability
    ``share``; its input then holds the prompt plus at least one user token.
    Only the prompt's full blocks are shared.
    """

    system_prompts: Annotated[int, Meta(ge=0)] = 3
    tokens: Tokens = 1024
    zipf_s: Rate = 1.2
    share: Probability = 1.0


class Sessions(_Config):
    """Multi-turn sessions.

    A request continues an open session with probability ``continue_prob``
    when one is eligible: its last turn arrived at least ``min_gap_s`` and at
    most ``timeout_s`` seconds ago, it has fewer than ``max_turns`` turns, and
    the grown input still fits ``isl.max``.  At most ``max_open`` sessions are
    kept (the least recently active is dropped).  ``emit_ids`` writes
    ``session_id`` on every row (a single-turn request is a one-turn session).

    ``emit_delays`` (which implies ``emit_ids``) also writes ``delay`` on every
    continuation turn, for closed-loop replay: the turn's recorded gap, in
    integer milliseconds, since the previous turn of its session *arrived*.
    The generator has no fleet, so it cannot know how long the previous turn
    took; it counts the whole gap as the user's think time.  Replayed closed
    loop, a turn therefore comes ``delay`` after its predecessor *completed*:
    never earlier than recorded, later by the fleet's response times.  No
    random draw is added, so the other columns do not change.
    """

    continue_prob: Probability = 0.4
    turn: TurnLengths = msgspec.field(default_factory=TurnLengths)
    min_gap_s: Seconds = 10.0
    timeout_s: PositiveSeconds = 900.0
    max_turns: Tokens = 10
    max_open: Tokens = 1024
    emit_ids: bool = False
    emit_delays: bool = False


# --------------------------------------------------------------------------- the config


class GeneratorConfig(_Config):
    """Everything that determines a synthetic trace.  Ends at ``duration_s`` or after ``requests`` rows,
    whichever comes first (at least one must be set)."""

    seed: int = 0
    duration_s: PositiveSeconds | None = 1800.0
    requests: Tokens | None = None
    block_size: Tokens = 512
    arrivals: Arrivals = msgspec.field(default_factory=Poisson)
    isl: InputLengths = msgspec.field(default_factory=InputLengths)
    osl: OutputLengths = msgspec.field(default_factory=OutputLengths)
    prefixes: Prefixes = msgspec.field(default_factory=Prefixes)
    sessions: Sessions = msgspec.field(default_factory=Sessions)

    def __post_init__(self) -> None:
        if self.duration_s is None and self.requests is None:
            raise ValueError("set duration_s and/or requests: the trace needs an end")
        a = self.arrivals
        if _peak_rate(a) <= 0:
            raise ValueError("arrivals: the rate is 0 everywhere, no request would ever arrive")
        if isinstance(a, Ramp) and a.over_s is None and self.duration_s is None:
            raise ValueError("arrivals: a ramp needs over_s when duration_s is not set")
        if self.duration_s is None and not _final_rate_positive(a):
            raise ValueError("arrivals: the final rate is 0 and duration_s is not set, so the trace would never end")
        bound = self.requests if self.requests is not None else _peak_rate(a) * (self.duration_s or 0.0)
        if not bound <= MAX_GENERATED_REQUESTS:
            raise ValueError(f"arrivals: up to {bound:,.3g} requests at a peak rate of {_peak_rate(a):g}/s; at most "
                             f"{MAX_GENERATED_REQUESTS:,} are generated (replaylib.limits.MAX_GENERATED_REQUESTS): "
                             "lower the rate or the duration, or set requests")
        if self.prefixes.system_prompts and self.prefixes.share > 0 and self.prefixes.tokens >= self.isl.max:
            raise ValueError(
                f"prefixes.tokens ({self.prefixes.tokens}) must be below isl.max ({self.isl.max}): "
                "a request holds its system prompt plus at least one user token"
            )


class GeneratorConfigError(ReplaylibError):
    """A generator config that does not validate; ``key`` is the dotted key path (``isl.mean``)."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")


def config_from_mapping(doc: Any, *, source: str = "config") -> GeneratorConfig:
    """Validate a plain mapping (e.g. parsed YAML) into a :class:`GeneratorConfig`.

    Errors are :class:`GeneratorConfigError` naming ``source`` and the key path.
    """
    if not isinstance(doc, Mapping):
        raise GeneratorConfigError(source, None, f"expected a mapping, got {type(doc).__name__}")
    try:
        return msgspec.convert(doc, GeneratorConfig, strict=False)
    except msgspec.ValidationError as exc:
        key, message = _explain(str(exc), doc)
        raise GeneratorConfigError(source, key, message) from None


def load_generator_config(path: str) -> GeneratorConfig:
    """Read and validate a YAML generator config (duplicate keys are errors)."""
    from replaylib.scenario.yamlio import read_yaml  # strict YAML reader shared with scenarios

    doc = read_yaml(path)
    return config_from_mapping({} if doc is None else doc, source=path)


def validate_config(config: GeneratorConfig) -> GeneratorConfig:
    """Check the field constraints that constructing a Struct directly does not check."""
    return config_from_mapping(msgspec.to_builtins(config), source="GeneratorConfig")


def _explain(text: str, doc: Any) -> tuple[str | None, str]:
    """msgspec's "Expected `int` >= 1 - at `$.isl.min`" -> ("isl.min", "expected int >= 1, got 0")."""
    message, _, where = text.partition(" - at `$")
    keys = [k for k in where.rstrip("`").replace("[", ".[").split(".") if k]
    if message.startswith("Object contains unknown field `"):
        keys.append(message.split("`")[1])
        message = "unknown key"
        shape = _lookup(doc, [*keys[:-1], "shape"])
        if keys[:-1] == ["arrivals"] and shape in SHAPES:
            cls = _SHAPE_CLASSES[SHAPES.index(shape)]
            message += f" for shape {shape} (it takes {', '.join(cls.__struct_fields__)})"
    elif message.startswith("Object missing required field `"):
        keys.append(message.split("`")[1])
        message = "required key is missing"
    elif message.startswith("Invalid value") and keys and keys[-1] == "shape":
        message = f"unknown shape; expected one of {', '.join(SHAPES)}"
    message = message.replace("`", "").replace("Expected", "expected", 1).replace("Invalid", "invalid", 1)
    value = _lookup(doc, keys)
    if value is not _MISSING and not isinstance(value, Mapping) and "got" not in message and repr(value) not in message and not message.startswith("unknown key"):
        message += f", got {value!r}"
    dotted = ""
    for k in keys:
        dotted += k if (k.startswith("[") or not dotted) else "." + k
    return dotted or None, message


_MISSING = object()


def _lookup(doc: Any, keys: list[str]) -> Any:
    for k in keys:
        try:
            doc = doc[int(k[1:-1])] if k.startswith("[") else doc[k]
        except (KeyError, IndexError, TypeError, ValueError):
            return _MISSING
    return doc


# --------------------------------------------------------------------------- the generator


class _Session:
    """An open conversation: its last turn's time, lengths and full blocks."""

    __slots__ = ("full_blocks", "id", "input_length", "last_s", "output_length", "turns")

    def __init__(self, sid: int, t: float, input_length: int, output_length: int, hash_ids: list[int], bs: int) -> None:
        self.id = sid
        self.turns = 1
        self.update(t, input_length, output_length, hash_ids, bs)

    def update(self, t: float, input_length: int, output_length: int, hash_ids: list[int], bs: int) -> None:
        self.last_s = t
        self.input_length = input_length
        self.output_length = output_length
        self.full_blocks = hash_ids[: input_length // bs]  # a copy: the emitted row's list is the caller's


def _last_s(s: _Session) -> float:
    return s.last_s


def _rng(seed: int, aspect: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across processes and PYTHONHASHSEED.
    return random.Random(f"replaylib.generate:{seed}:{aspect}")


def _arrival_times(config: GeneratorConfig) -> Iterator[float]:
    """Arrival instants in seconds, by thinning a homogeneous process at the peak rate."""
    rng = _rng(config.seed, "arrivals")
    rate = _rate_function(config.arrivals, config.duration_s)
    peak = _peak_rate(config.arrivals)
    end = math.inf if config.duration_s is None else config.duration_s
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return
        if rng.random() * peak < rate(t):
            yield t


def generate_trace(config: GeneratorConfig) -> Iterator[Request]:
    """Validate ``config`` and return a lazy iterator over its requests (arrival order, integer ms)."""
    return _generate(validate_config(config))


def _generate(c: GeneratorConfig) -> Iterator[Request]:
    bs = c.block_size
    isl_draw = _sampler(c.isl, _rng(c.seed, "isl"))
    osl_draw = _sampler(c.osl, _rng(c.seed, "osl"))
    turn_draw = _sampler(c.sessions.turn, _rng(c.seed, "turn"))
    prefix_rng = _rng(c.seed, "prefix")
    session_rng = _rng(c.seed, "session")
    ss, pf = c.sessions, c.prefixes
    isl_max = c.isl.max
    sessions_on = ss.continue_prob > 0 and ss.max_turns > 1

    next_block = 0
    prompts: list[list[int]] = []  # full blocks of each system prompt
    prompt_full = pf.tokens // bs
    for _ in range(pf.system_prompts):
        prompts.append(list(range(next_block, next_block + prompt_full)))
        next_block += prompt_full
    popularity = list(accumulate(1.0 / (k**pf.zipf_s) for k in range(1, pf.system_prompts + 1)))

    open_: list[_Session] = []  # sorted by last_s (a continued session moves to the end)
    next_session = 0
    limit = c.requests if c.requests is not None else math.inf
    n = 0
    for t in _arrival_times(c):
        if n >= limit:
            return
        n += 1
        # Every aspect draws the same number of values per row whatever the other aspects do.
        isl, osl, turn = isl_draw(), osl_draw(), turn_draw()
        use_prompt = prefix_rng.random() < pf.share
        prompt_u = prefix_rng.random()
        cont_u = session_rng.random()
        pick_u = session_rng.random()

        session: _Session | None = None
        delay: int | None = None
        if sessions_on:
            stale = bisect_left(open_, t - ss.timeout_s, key=_last_s)
            if stale:
                del open_[:stale]
            eligible = bisect_right(open_, t - ss.min_gap_s, key=_last_s)
            if eligible and cont_u < ss.continue_prob:
                i = min(int(pick_u * eligible), eligible - 1)
                candidate = open_[i]
                grown = candidate.input_length + candidate.output_length + turn
                del open_[i]
                if grown <= isl_max:
                    session = candidate
                    input_length = grown
                    shared = candidate.full_blocks
                # else: the conversation outgrew the context; it ends and this request starts afresh
        if session is None:
            if prompts and use_prompt:
                k = bisect_right(popularity, prompt_u * popularity[-1])
                shared = prompts[min(k, len(prompts) - 1)]
                input_length = min(max(isl, pf.tokens + 1), isl_max)
            else:
                shared = []
                input_length = isl
        n_blocks = -(-input_length // bs)
        fresh = n_blocks - len(shared)
        hash_ids = shared + list(range(next_block, next_block + fresh))
        next_block += fresh

        if session is None:
            sid = next_session
            next_session += 1
            if sessions_on:
                open_.append(_Session(sid, t, input_length, osl, hash_ids, bs))
                if len(open_) > ss.max_open:
                    del open_[0]
        else:
            sid = session.id
            if ss.emit_delays:
                delay = math.floor(t * 1000) - math.floor(session.last_s * 1000)
            session.turns += 1
            if session.turns < ss.max_turns:
                session.update(t, input_length, osl, hash_ids, bs)
                open_.append(session)
        yield Request(
            timestamp=math.floor(t * 1000),
            input_length=input_length,
            output_length=osl,
            hash_ids=hash_ids,
            session_id=sid if ss.emit_ids or ss.emit_delays else None,
            delay=delay,
        )
