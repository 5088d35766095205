"""Errors a user can act on. The CLI prints them as one line (plus a hint) instead of a traceback."""

from __future__ import annotations


class SampleCNNError(Exception):
    """Base class: a message for the user, an optional hint and the exit code to use."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(SampleCNNError):
    """The user asked for something that cannot exist (bad name, bad option value): exit 2."""

    exit_code = 2


class DataError(SampleCNNError):
    """Input data is missing or unreadable: exit 1."""


class RunError(SampleCNNError):
    """A run directory is missing, incomplete or would be overwritten: exit 1."""
