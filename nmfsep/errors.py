"""The one exception hierarchy of nmfsep.

Every error a user can cause is one of these; the CLI prints ``error: <path>: <message>``
on one line and exits with :attr:`NmfsepError.exit_code`.
"""

from __future__ import annotations

import os


class NmfsepError(Exception):
    """Base class of every error nmfsep raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    path : str or os.PathLike, optional
        The file (or directory) the problem is about, if any.
    """

    exit_code = 1

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ParameterError(NmfsepError, ValueError):
    """A parameter (API argument or CLI option) is invalid."""

    exit_code = 2


class AudioError(NmfsepError):
    """An audio file cannot be read, holds unusable data, or an output cannot be written."""


class ModelError(NmfsepError):
    """A model file is missing, malformed, unsafe or of an unknown format version."""
