"""Where a config problem is, how bad it is, and the error that carries all of them."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple


class Location(NamedTuple):
    """A line of a config file, as the user named the file (includes keep their joined path).

    A NamedTuple rather than a dataclass: one is made per line, so construction cost counts.
    """

    file: str
    line: int

    def __str__(self) -> str:
        # Line 0 stands for the file as a whole (it could not be read at all).
        return f"{self.file}:{self.line}" if self.line else self.file


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    location: Location
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        if self.severity is Severity.WARNING:
            return f"{self.location}: warning: {self.message}"
        return f"{self.location}: {self.message}"


class ConfigError(Exception):
    """Every error found in a configuration (never just the first), plus its warnings."""

    def __init__(self, errors: Iterable[Diagnostic], warnings: Iterable[Diagnostic] = ()) -> None:
        self.errors: tuple[Diagnostic, ...] = tuple(errors)
        self.warnings: tuple[Diagnostic, ...] = tuple(warnings)
        super().__init__("\n".join(str(d) for d in self.errors))

    @property
    def messages(self) -> list[str]:
        """Each error as `FILE:LINE: message`."""
        return [str(d) for d in self.errors]


class Diagnostics:
    """Collects errors and warnings while a configuration is read; nothing stops at the first."""

    def __init__(self) -> None:
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def error(self, location: Location, message: str) -> None:
        self.errors.append(Diagnostic(location, message, Severity.ERROR))

    def warning(self, location: Location, message: str) -> None:
        self.warnings.append(Diagnostic(location, message, Severity.WARNING))

    def sorted_errors(self) -> list[Diagnostic]:
        # Stable sort by position so output reads top to bottom whatever phase found it.
        return sorted(self.errors, key=lambda d: d.location)

    def sorted_warnings(self) -> list[Diagnostic]:
        return sorted(self.warnings, key=lambda d: d.location)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""
