"""The error a report raises when it cannot be made as asked."""

from __future__ import annotations

from rules.errors import ZhidaError


class ReportError(ZhidaError):
    """A report cannot be made as asked (bad month, calendar year not covered, no chart data)."""
