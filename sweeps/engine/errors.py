"""The one error type of the engine's configuration checks."""

from __future__ import annotations


class ConfigError(ValueError):
    """A sweep declaration or command-line value is invalid; the message names the field or axis."""
