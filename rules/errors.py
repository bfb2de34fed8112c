"""The one error hierarchy of zhida. Every part raises these; nothing is caught and dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ZhidaError(Exception):
    """Root of every error zhida raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a policy file, located as precisely as we can."""

    file: str
    line: int | None
    where: str  # policy/item/condition id path, e.g. "wengang-2025/sme/layoff"
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{loc}: [{self.where}] {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class PolicyError(ZhidaError):
    """A policy file (or rule set) is refused as a whole, with every problem listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SnapshotError(ZhidaError):
    """A registry snapshot cannot be used (missing table or column, unreadable file)."""

    def __init__(self, message: str, *, file: str | Path | None = None, field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        where = ":".join(x for x in (self.file, field) if x)
        super().__init__(f"{where}: {message}" if where else message)


class MatchError(ZhidaError):
    """A match run cannot be carried out as asked (bad arguments, engine failure)."""


class PayoutError(ZhidaError):
    """An offer, batch or bank-file operation is refused."""


class StateError(PayoutError):
    """The operation is not allowed from the object's current state."""


class BudgetError(PayoutError):
    """The operation would take a policy past its budget."""


def display_path(path: Path) -> str:
    """A path as users should see it in messages: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
