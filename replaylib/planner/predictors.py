"""Next-interval predictors for one scalar series (request rate, mean ISL, mean OSL).

Every predictor has ``observe(value)`` and ``predict()``:

* ``observe(None)`` (a metrics outage, or a window with no samples) and
  non-finite values leave the predictor unchanged;
* ``predict()`` is ``None`` until the first real observation.

Kinds (``PlannerConfig.predictor``):

``constant``
    The last observed value.
``moving_average``
    The arithmetic mean of the last ``predictor_window`` observed values.
``kalman``
    A one-dimensional *local-level* Kalman filter: the series is a level ``x``
    that random-walks (process noise ``q``) and is observed with measurement
    noise ``r``.  Both noises are fixed fractions of the level — standard
    deviations ``KALMAN_PROCESS_REL = 0.1`` and ``KALMAN_MEASUREMENT_REL = 0.2``
    times the level — so the filter runs on the *relative* variance ``p`` and
    its gain does not depend on the series' unit or size (a level of 0 is fine)::

        first value z:  x = z,  p = r²
        each next z:    p⁻ = p + q²;  K = p⁻ / (p⁻ + r²);  x += K (z − x);  p = (1 − K) p⁻
        predict():      x   (a local level's best forecast is its current level)

    With these constants ``K`` settles at about 0.39.  Everything is plain
    arithmetic on the observations: deterministic, no randomness.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, Protocol

PredictorKind = Literal["constant", "moving_average", "kalman"]
PREDICTOR_KINDS: tuple[str, ...] = ("constant", "moving_average", "kalman")

#: Kalman process-noise standard deviation, as a fraction of the level.
KALMAN_PROCESS_REL = 0.1
#: Kalman measurement-noise standard deviation, as a fraction of the level.
KALMAN_MEASUREMENT_REL = 0.2


class Predictor(Protocol):
    def observe(self, value: float | None) -> None: ...

    def predict(self) -> float | None: ...


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class ConstantPredictor:
    """Predicts the last observed value."""

    def __init__(self) -> None:
        self._last: float | None = None

    def observe(self, value: float | None) -> None:
        if _usable(value):
            self._last = float(value)  # type: ignore[arg-type]

    def predict(self) -> float | None:
        return self._last


class MovingAveragePredictor:
    """Predicts the mean of the last ``window`` observed values."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"moving_average window must be >= 1, got {window}")
        self._values: deque[float] = deque(maxlen=window)

    def observe(self, value: float | None) -> None:
        if _usable(value):
            self._values.append(float(value))  # type: ignore[arg-type]

    def predict(self) -> float | None:
        if not self._values:
            return None
        return math.fsum(self._values) / len(self._values)


class KalmanPredictor:
    """1-D local-level Kalman filter with noise relative to the level (see the module doc)."""

    def __init__(self, process_rel: float = KALMAN_PROCESS_REL, measurement_rel: float = KALMAN_MEASUREMENT_REL) -> None:
        if process_rel <= 0 or measurement_rel <= 0:
            raise ValueError("kalman noise fractions must be > 0")
        self._q2 = process_rel * process_rel
        self._r2 = measurement_rel * measurement_rel
        self._level: float | None = None
        self._p = self._r2  # relative variance of the level estimate

    @property
    def variance(self) -> float:
        """The current relative variance ``p`` of the level estimate."""
        return self._p

    def observe(self, value: float | None) -> None:
        if not _usable(value):
            return
        z = float(value)  # type: ignore[arg-type]
        if self._level is None:
            self._level = z
            self._p = self._r2
            return
        p_prior = self._p + self._q2
        gain = p_prior / (p_prior + self._r2)
        self._level += gain * (z - self._level)
        self._p = (1.0 - gain) * p_prior

    def predict(self) -> float | None:
        return self._level


def make_predictor(kind: str, window: int) -> Predictor:
    """A fresh predictor of ``kind`` (``window`` is used by ``moving_average`` only)."""
    if kind == "constant":
        return ConstantPredictor()
    if kind == "moving_average":
        return MovingAveragePredictor(window)
    if kind == "kalman":
        return KalmanPredictor()
    raise ValueError(f"unknown predictor {kind!r}; expected one of {', '.join(PREDICTOR_KINDS)}")


__all__ = [
    "KALMAN_MEASUREMENT_REL",
    "KALMAN_PROCESS_REL",
    "PREDICTOR_KINDS",
    "ConstantPredictor",
    "KalmanPredictor",
    "MovingAveragePredictor",
    "Predictor",
    "PredictorKind",
    "make_predictor",
]
