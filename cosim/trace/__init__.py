"""The timeline record of a run (spans, instants, counters) and its exporters."""
from .recorder import COUNTER_FIELDS, INSTANT_FIELDS, SPAN_FIELDS, Counter, Instant, Span, Trace

__all__ = ["Trace", "Span", "Instant", "Counter", "SPAN_FIELDS", "INSTANT_FIELDS", "COUNTER_FIELDS"]
