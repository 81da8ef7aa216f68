"""Resource allocation as pure functions: a round snapshot in, a plan out (cosim.optimizers.api).

`baseline` (equal shares, maximum power) is one registered optimizer among those schemes add; selection
rules (`selection`) and cost models (`costs`) are here too. `cosim list` prints what is registered.
"""
from .api import Cost, Decision, Plan, RoundSnapshot

__all__ = ["Cost", "Decision", "Plan", "RoundSnapshot"]
