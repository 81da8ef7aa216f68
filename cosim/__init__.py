"""The co-simulation kernel: the only package that knows about time and SimPy."""
__version__ = "0.6.0"  # keep equal to pyproject.toml
