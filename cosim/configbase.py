"""What every config section shares: frozen, strict pydantic models that reject unknown keys and non-finite
numbers, and the constrained number types the sections use.

`within(low, high, unit, why)` bounds a number physically or by the resources it costs; its message names
the bound that was crossed and why the bound is there, e.g. `at most 512 (...)`. Put it after a type that
already has pydantic's own lower bound (`Annotated[PosFloat, within(high=...)]`) to keep that bound's
message ("greater than 0")."""
from __future__ import annotations

import math
from typing import Annotated, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]


class Frozen(BaseModel):
    # allow_inf_nan: .inf and .nan parse as floats (YAML) but are no setting; a field that means "no limit"
    # says so with None
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def fmt(x: float) -> str:
    """A bound as people write it: 512, 0.001, 1e6, 1e-3."""
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    text = f"{x:g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


class Bound:
    """A closed (or, with low_open, half-open) range [low, high] in `unit`, with why each side is there."""

    def __init__(self, low: Optional[float] = None, high: Optional[float] = None, unit: str = "",
                 why: Union[str, tuple[str, str]] = "", low_open: bool = False, high_open: bool = False):
        self.low, self.high, self.unit, self.low_open, self.high_open = low, high, unit, low_open, high_open
        self.why_low, self.why_high = (why, why) if isinstance(why, str) else why

    def _with(self, x: float, why: str) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{fmt(x)}{unit}" + (f" ({why})" if why else "")

    def problem(self, value) -> Optional[str]:
        """None if `value` is within, else what was expected (for `<field> = <value>: expected ...`)."""
        if isinstance(value, float) and not math.isfinite(value):
            return "a finite number"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return ("greater than " if self.low_open else "at least ") + self._with(self.low, self.why_low)
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return ("less than " if self.high_open else "at most ") + self._with(self.high, self.why_high)
        return None

    def __call__(self, value):
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


def within(low: Optional[float] = None, high: Optional[float] = None, unit: str = "",
           why: Union[str, tuple[str, str]] = "", low_open: bool = False, high_open: bool = False) -> AfterValidator:
    """An Annotated marker: the number lies in [low, high] (see Bound)."""
    return AfterValidator(Bound(low, high, unit, why, low_open, high_open))


# Bounds several sections share, each with its reason.
UNIT_MISTAKE = "larger is a unit mistake"
# a length (road, spacing, radius) in metres
LENGTH_M = within(high=1e6, unit="m", why=f"1000 km; {UNIT_MISTAKE}, metres expected")
# a coordinate in metres (SUMO nets and FCD files are in projected metres, typically well within this)
COORD_M = within(-1e7, 1e7, unit="m", why="10 000 km from the origin, larger than any projected map")
# a simulated time (seconds)
TIME_S = within(high=1e7, unit="s", why=f"about 116 days of simulated time; {UNIT_MISTAKE}, seconds expected")
DAY_S = within(high=86400.0, unit="s", why="a day; longer is no round or wait in a run")
# a road vehicle's speed
SPEED_MPS = within(high=70.0, unit="m/s", why="252 km/h, faster than road traffic: km/h given as m/s?")
# a clock frequency
CLOCK_HZ = within(1e6, 1e11, unit="Hz", why=("1 MHz: slower is no processor clock", "100 GHz: faster than any chip"))
# an energy budget per vehicle and round
ENERGY_J = within(high=1e6, unit="J", why="1 MJ is a car battery's worth of energy per round")
# a scheme optimizer's iteration limit
ITERATIONS = within(high=10000, why="each iteration solves the round's allocation again; 10 000 never converge")
# a seed (SUMO's --seed and duarouter's are 32-bit signed ints)
SEED = within(high=2**31 - 1, why="SUMO's --seed is a 32-bit signed integer")
