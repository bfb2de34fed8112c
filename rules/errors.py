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


class CalendarError(ZhidaError):
    """A working-day count the official calendar cannot give (a year `chinese-calendar` has no schedule for)."""


class PolicyError(ZhidaError):
    """A policy file (or rule set) is refused as a whole, with every problem listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class SourceProblem:
    """One thing wrong in a department export or its mapping file (`zhida snapshot import`), located as a
    spreadsheet user finds it: file, sheet, row, column letter and header; or file and line for the
    mapping file itself."""

    file: str
    message: str
    hint: str | None = None
    line: int | None = None  # the mapping file's line
    sheet: str | None = None
    row: int | None = None  # as Excel numbers it (CSV: the record number)
    column: str | None = None  # the column letter, A, B, ..., AA
    header: str | None = None
    field: str | None = None  # the snapshot field the column feeds

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        place = f"工作表「{self.sheet}」" if self.sheet is not None else ""
        if self.row is not None:
            place += f"第 {self.row} 行"
        if self.column is not None:
            place += (" " if self.row is not None else "") + f"{self.column} 列"
        if self.header is not None:
            place += f"「{self.header}」"
        if place:
            where += " " + place
        if self.field is not None:
            where += f" → {self.field}"
        text = f"{where}：{self.message}"
        return f"{text}（{self.hint}）" if self.hint else text


class SnapshotError(ZhidaError):
    """A registry snapshot cannot be used (missing table or column, unreadable file)."""

    def __init__(self, message: str, *, file: str | Path | None = None, field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        where = ":".join(x for x in (self.file, field) if x)
        super().__init__(f"{where}: {message}" if where else message)


class IngestError(SnapshotError):
    """Department exports cannot be imported as a snapshot: every problem found (up to a bound), and how
    many there were in all. Nothing was written."""

    def __init__(self, problems: list[SourceProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        lines = [str(p) for p in problems]
        if self.total > len(problems):
            lines.append(f"另有 {self.total - len(problems):,} 处错误未列出；请先更正以上各处后再导入")
        ZhidaError.__init__(
            self, f"导入失败，共 {self.total:,} 处错误，未写入任何文件：\n" + "\n".join(lines)
        )
        self.file, self.field = (problems[0].file if problems else None), None


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
