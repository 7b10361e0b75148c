"""The engine's error types, and the one-line summary of an error that the console prints."""

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


class StageBuildError(RuntimeError):
    """A shared stage instance failed to build; the message names the stage and a trial point that needs it."""


def first_line(err: BaseException) -> str:
    """What failed, in one line: a Ray task error's original exception (its `cause`), else the message."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        err = cause
    if isinstance(err, StageBuildError):
        return str(err)
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__
