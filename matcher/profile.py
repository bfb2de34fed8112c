"""The enterprise profile (企业画像): one row per accepted enterprise with every catalog field.

Built for one assessment year and one as-of date from the accepted snapshot tables (see
`matcher.snapshot`). The query is one sqlglot tree, so DuckDB and Spark SQL render the same definitions
of every derived field. A field whose inputs are missing is NULL, never 0 or False by accident
(certification flags are False when no certificate exists; has_bank_account is False without an account).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import sqlglot
from sqlglot import exp

from matcher.ratios import RATIOS, exact, value_sql
from matcher.sizeclass import above_scale_expr, size_class_expr
from rules.catalog import CATALOG, CERT_LABELS, FIELDS

CERT_FLAGS = {
    "is_high_tech": "high_tech",
    "is_srdi": "srdi",
    "is_little_giant": "srdi_little_giant",
    "is_tech_sme": "tech_sme",
}

_VALID = "(expiry_date IS NULL OR expiry_date >= CAST(:as_of AS DATE))"
"""A certificate (with cert_date <= as_of, as the certificate subquery keeps) is valid on as_of."""


def _certificate_columns() -> str:
    """Per enterprise, from its certificates issued by as_of: per type, whether one is valid on as_of,
    the earliest cert_date (first recognition) and the latest cert_date of those valid on as_of."""
    out = [
        f"MAX(CASE WHEN cert_type = '{cert}' AND {_VALID} THEN 1 ELSE 0 END) = 1 AS {flag}"
        for flag, cert in CERT_FLAGS.items()
    ]
    for cert in CERT_LABELS:
        out.append(f"MIN(CASE WHEN cert_type = '{cert}' THEN cert_date END) AS {cert}_first_date")
        out.append(f"MAX(CASE WHEN cert_type = '{cert}' AND {_VALID} THEN cert_date END) AS {cert}_cert_date")
    return ",\n    ".join(out)


_CERT_DATES = ",\n  ".join(f"cert.{c}_first_date, cert.{c}_cert_date" for c in CERT_LABELS)

# The derived fields whose definitions are plain SQL; size_class and above_scale come from matcher.sizeclass,
# the ratios from matcher.ratios.
_TEMPLATE = f"""
SELECT
  e.uscc, e.name, e.region_code, e.industry_code,
  SUBSTRING(e.industry_code, 1, 1) AS industry_section,
  e.status, e.reg_date,
  CASE WHEN e.reg_date IS NULL THEN NULL
       ELSE EXTRACT(YEAR FROM CAST(:as_of AS DATE)) - EXTRACT(YEAR FROM e.reg_date)
            - CASE WHEN EXTRACT(MONTH FROM CAST(:as_of AS DATE)) * 100 + EXTRACT(DAY FROM CAST(:as_of AS DATE))
                        < EXTRACT(MONTH FROM e.reg_date) * 100 + EXTRACT(DAY FROM e.reg_date)
                   THEN 1 ELSE 0 END
  END AS age_years,
  e.reg_capital,
  a.employees, a.revenue, a.total_assets,
  t.tax_paid, t.rd_expense,
  ap.employees AS employees_prev, ap.revenue AS revenue_prev,
  tp.tax_paid AS tax_paid_prev, tp.rd_expense AS rd_expense_prev,
  :rd_ratio AS rd_ratio,
  t.credit_rating,
  s.insured_start, s.insured_end,
  :layoff_rate AS layoff_rate,
  s.ui_premium_paid, s.ui_arrears, s.new_graduate_hires,
  c.serious_dishonest, c.abnormal_operation,
  COALESCE(cert.is_high_tech, FALSE) AS is_high_tech,
  COALESCE(cert.is_srdi, FALSE) AS is_srdi,
  COALESCE(cert.is_little_giant, FALSE) AS is_little_giant,
  COALESCE(cert.is_tech_sme, FALSE) AS is_tech_sme,
  {_CERT_DATES},
  l.above_scale AS listed_above_scale,
  lp.above_scale AS listed_above_scale_prev,
  :size_class AS size_class,
  :above_scale AS above_scale,
  b.uscc IS NOT NULL AS has_bank_account
FROM enterprises AS e
LEFT JOIN annual_reports AS a ON a.uscc = e.uscc AND a.year = :year
LEFT JOIN tax AS t ON t.uscc = e.uscc AND t.year = :year
LEFT JOIN social_insurance AS s ON s.uscc = e.uscc AND s.year = :year
LEFT JOIN annual_reports AS ap ON ap.uscc = e.uscc AND ap.year = :year - 1
LEFT JOIN tax AS tp ON tp.uscc = e.uscc AND tp.year = :year - 1
LEFT JOIN stats_listing AS l ON l.uscc = e.uscc AND l.year = :year
LEFT JOIN stats_listing AS lp ON lp.uscc = e.uscc AND lp.year = :year - 1
LEFT JOIN credit AS c ON c.uscc = e.uscc
LEFT JOIN (
  SELECT uscc,
    {_certificate_columns()}
  FROM certifications
  WHERE cert_date <= CAST(:as_of AS DATE)
  GROUP BY uscc
) AS cert ON cert.uscc = e.uscc
LEFT JOIN bank_accounts AS b ON b.uscc = e.uscc
"""


# The alias of each registry table in the profile query.
_ALIASES = {"enterprises": "e", "annual_reports": "a", "tax": "t", "social_insurance": "s", "credit": "c"}


def _stored(name: str) -> exp.Expression:
    """A stored field as the profile query reads it, from its registry table."""
    return exp.column(name, _ALIASES[CATALOG[name].table])


def profile_query(assessment_year: int, as_of: dt.date) -> exp.Select:
    """The profile as a dialect-neutral sqlglot tree over the accepted snapshot tables."""
    tree = sqlglot.parse_one(_TEMPLATE, read="duckdb")
    size = size_class_expr(
        exp.column("industry_code", "e"),
        exp.column("employees", "a"),
        exp.column("revenue", "a"),
        exp.column("total_assets", "a"),
    )
    above = above_scale_expr(exp.column("industry_code", "e"), exp.column("revenue", "a"))
    values: dict[str, exp.Expression] = {
        "as_of": exp.Literal.string(as_of.isoformat()),
        "year": exp.Literal.number(assessment_year),
        "size_class": size,
        "above_scale": above,
        **{name: value_sql(ratio, _stored) for name, ratio in RATIOS.items()},
    }

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in values:
            return values[node.name].copy()
        return node

    out = tree.transform(fill)
    assert isinstance(out, exp.Select)
    # The profile is the catalog: same fields, same order.
    assert [s.alias_or_name for s in out.selects] == [f.name for f in FIELDS]
    return out


def profile_table_name(assessment_year: int) -> str:
    return f"profile_{assessment_year}"


def build_profile(con: duckdb.DuckDBPyConnection, assessment_year: int, as_of: dt.date) -> str:
    """Materialise the profile for one year in DuckDB (idempotent per connection); return its table name."""
    name = profile_table_name(assessment_year)
    select = profile_query(assessment_year, as_of)
    # In front, each enterprise's number in USCC order: the matcher's narrow tables key rows by it.
    number = "CAST(ROW_NUMBER() OVER (ORDER BY uscc) AS INT) AS rid"
    con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT {number}, * FROM ({select.sql('duckdb')}) ORDER BY rid"
    )
    return name


def catalog_columns() -> str:
    """The profile's Contract 3 columns, for `SELECT` (a profile table also holds `rid`)."""
    return ", ".join(f.name for f in FIELDS)


def _python_rows(
    con: duckdb.DuckDBPyConnection, table: str, where: str = "", params: Sequence[object] = ()
) -> list[dict[str, object]]:
    """Profile rows as Python values, each ratio divided exactly (`matcher.ratios.exact`) from its
    numerator and denominator rather than read from its truncated column."""
    parts = ", ".join(
        f"{r.numerator(exp.column).sql('duckdb')}, {r.denominator(exp.column).sql('duckdb')}"
        for r in RATIOS.values()
    )
    cur = con.execute(f"SELECT {catalog_columns()}, {parts} FROM {table} {where} ORDER BY uscc", list(params))
    names = [f.name for f in FIELDS]
    out = []
    for values in cur.fetchall():
        row = dict(zip(names, values[: len(names)], strict=True))
        fractions = values[len(names) :]
        for n, name in enumerate(RATIOS):
            if row[name] is not None:
                row[name] = exact(fractions[2 * n], fractions[2 * n + 1])
        out.append(row)
    return out


def profile_row(con: duckdb.DuckDBPyConnection, table: str, uscc: str) -> dict[str, object] | None:
    """One enterprise's profile as Python values (Decimal, int, date, bool, str or None)."""
    rows = _python_rows(con, table, "WHERE uscc = ?", (uscc,))
    return rows[0] if rows else None


def profile_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, object]]:
    """Every profile row as Python values, in uscc order (for the reference evaluation in tests)."""
    return _python_rows(con, table)


def coverage(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, dict[str, int]]:
    """Rows of the profile and, per catalog field, how many rows have a value (not NULL)."""
    counts = ", ".join(f"count({f.name})" for f in FIELDS)
    row = con.execute(f"SELECT count(*), {counts} FROM {table}").fetchall()[0]
    assert row is not None
    return int(row[0]), {f.name: int(n) for f, n in zip(FIELDS, row[1:], strict=True)}
