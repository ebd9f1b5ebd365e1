"""The package version, in one place below every other module (pyproject.toml reads it too)."""

__version__ = "0.3.0"
