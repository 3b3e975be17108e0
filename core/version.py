"""The version of Cronium on Prefect: defined here alone (pyproject.toml reads it)."""

__version__ = "0.2.0"
