"""Named exceptions for mistakes a user can make and fix."""

import difflib


class GRError(Exception):
    """Base class of every error that gr_core raises on purpose."""


class DatasetError(GRError):
    """A data set is missing, unreadable or malformed."""


class ConfigError(GRError, ValueError):
    """A setting has a value that cannot work."""


class RunFormatError(GRError):
    """A run folder is missing, corrupted or from another format version."""


class UnknownNameError(GRError, KeyError):
    """A name (entity, relation, data set) is not known; the message suggests close ones."""

    def __init__(self, kind: str, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")
        self.kind, self.name, self.close_matches = kind, name, close

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]
