"""Per-scheme resource allocation, called by the protocols at round start and other event boundaries."""
from .baseline import Plan, plan_baseline

__all__ = ["Plan", "plan_baseline"]
