"""The one error type of the engine's configuration checks."""

from __future__ import annotations


class ConfigError(ValueError):
    """A sweep declaration or command-line value is invalid; the message names the field or axis."""


class SweepFailedError(RuntimeError):
    """The sweep stopped on an error outside any one trial (a stage build, Ray, the recorder).

    The message says what failed; `log_path` is the sweep's log file, which holds the full traceback.
    """

    def __init__(self, message: str, log_path: str | None) -> None:
        super().__init__(message)
        self.log_path = log_path
