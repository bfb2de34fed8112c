"""Questions about a match run, answered for the analysis notebooks and the monthly report.

`open_run(folder)` opens a run folder (Contract 4) in DuckDB; the functions below each answer one
question as a pandas DataFrame (money stays `Decimal`): coverage per item and by region, industry
section and size class; how concentrated the money is; which single condition blocks most near-misses
and how far they are from it; what a different threshold would gain (through `matcher.simulate`); which
fields, and so which departments, hold back candidates; and the snapshot's data-quality tables.

The run's snapshot and rules are read from the paths in its manifest unless others are given, and are
refused when their fingerprints differ from the manifest's: an analysis over other data would be wrong.
They are loaded only by the questions that need them (the near-miss blockers need neither).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from rule_engine import ast

from matcher import runfolder
from matcher.codes import industry_name, region_name
from matcher.compile import amount_sql
from matcher.duckdb_engine import connect
from matcher.profile import build_profile
from matcher.results import open_results
from matcher.runfolder import Manifest
from matcher.simulate import simulate
from matcher.snapshot import SnapshotReport, load_snapshot
from matcher.snapshot_rules import RULES
from rules.catalog import CATALOG, DEPARTMENTS
from rules.errors import MatchError, display_path
from rules.expressions import parse, walk
from rules.formats import SIZE_LABELS
from rules.policy import Policy
from rules.ruleset import load_ruleset

ZERO = Decimal("0.00")
NOBODY_SHARE = 0.001
"""An item whose candidates are fewer than this share of the enterprises "reaches almost nobody"."""
EVERYBODY_SHARE = 0.5
"""An item whose candidates are at least this share of the enterprises "reaches almost everybody"."""
TOP_SHARE = 0.1
"""Concentration is the share of the money that goes to this top share of recipients."""
CLOSE = 0.1
"""A near-miss is "close" when the gap to the threshold is at most this share of the threshold."""

TABLE_LABELS = {
    "enterprises": "企业登记",
    "annual_reports": "企业年报",
    "tax": "纳税",
    "social_insurance": "社会保险",
    "credit": "信用",
    "certifications": "资质认定",
    "stats_listing": "规上统计名录",
    "bank_accounts": "对公账户",
    "payments": "已拨付记录",
}
RAW_COLUMN_LABELS = {
    "year": "年度",
    "contact_phone": "联系电话",
    "cert_type": "资质类型",
    "cert_date": "发证日期",
    "expiry_date": "有效期至",
    "bank_name": "开户银行",
    "account_no": "账号",
    "account_name": "户名",
    "policy_id": "政策",
    "item_id": "事项",
    "period": "期间",
    "amount": "金额",
}
"""Labels of snapshot columns that are not catalog fields (the catalog labels the rest)."""
DIMENSIONS = {"region": "地区（地级）", "industry_section": "行业门类", "size_class": "企业规模"}
UNKNOWN = "（未知）"


@dataclass
class RunData:
    """A match run opened for analysis: the folder, its manifest and a DuckDB connection.

    The connection holds the run's outputs as `run_candidates`, `run_near_misses` and
    `run_missing_data`; the snapshot and the profiles are loaded on first use.
    """

    path: Path
    manifest: Manifest
    con: duckdb.DuckDBPyConnection
    snapshot_dir: Path
    policies_dir: Path
    _report: SnapshotReport | None = None
    _policies: dict[str, Policy] | None = None
    _profiles: dict[int, str] = field(default_factory=dict)

    @property
    def as_of(self) -> dt.date:
        return self.manifest.as_of

    @property
    def enterprises(self) -> int:
        """Enterprises the snapshot accepted: everyone the run looked at."""
        return self.manifest.enterprises

    @property
    def snapshot(self) -> SnapshotReport:
        """The snapshot's data-quality report (loads the snapshot into the connection on first use)."""
        if self._report is None:
            report = load_snapshot(self.snapshot_dir, self.con)
            expected = self.manifest.snapshot.fingerprint
            if report.fingerprint != expected:
                raise MatchError(
                    f"快照 {display_path(self.snapshot_dir)} 的指纹 {report.fingerprint} 与匹配结果记录的 "
                    f"{expected} 不符：请用 snapshot= 指定这次匹配所用的快照"
                )
            self._report = report
        return self._report

    @property
    def policies(self) -> dict[str, Policy]:
        """The policies the run matched, by id (loaded and fingerprint-checked on first use)."""
        if self._policies is None:
            ruleset = load_ruleset(self.policies_dir)
            expected = self.manifest.rules.fingerprint
            if ruleset.fingerprint != expected:
                raise MatchError(
                    f"政策目录 {display_path(self.policies_dir)} 的指纹与匹配结果记录的 {expected} 不符"
                    "（政策已修改？）：请用 policies= 指定这次匹配所用的政策目录"
                )
            wanted = {p.key for p in self.manifest.policies}
            self._policies = {p.id: p for p in ruleset if (p.id, p.version) in wanted}
        return self._policies

    def profile(self, year: int) -> str:
        """The profile table of an assessment year (built on first use)."""
        if year not in self._profiles:
            _ = self.snapshot
            self._profiles[year] = build_profile(self.con, year, self.as_of)
        return self._profiles[year]

    def query(self, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
        """Rows of a query as a DataFrame whose DECIMAL columns stay Decimal (DuckDB's .df() makes floats)."""
        cur = self.con.execute(sql, list(params))
        names = [d[0] for d in cur.description or []]
        return pd.DataFrame.from_records(cur.fetchall(), columns=names)


def open_run(run: Path, *, snapshot: Path | None = None, policies: Path | None = None) -> RunData:
    """Open a run folder; `snapshot` and `policies` default to the paths its manifest names."""
    if not runfolder.has_manifest(run):
        raise MatchError(
            f"{display_path(run)} 不是匹配结果目录（缺少 {runfolder.MANIFEST}），请先运行 zhida match"
        )
    outputs = [run / runfolder.CANDIDATES]
    if not runfolder.has_compact_results(run):  # format 1 and 2: the lists are files
        outputs += [run / runfolder.NEAR_MISSES, run / runfolder.MISSING_DATA]
    for path in outputs:
        if not path.exists():
            raise MatchError(f"匹配结果目录 {display_path(run)} 缺少 {path.name}")
    manifest = runfolder.read_manifest(run)
    con = connect()
    con.execute(
        f"CREATE VIEW run_candidates AS SELECT * FROM read_parquet('{_sql_text(runfolder.parquet_source(outputs[0]))}')"
    )
    # The near misses and missing data as format 2 wrote them, read on demand (`matcher.results`).
    results = open_results(run)
    results.register(con)
    for name in ("near_misses", "missing_data"):
        con.execute(f"CREATE VIEW run_{name} AS {results.list_sql(name)}")
    _policy_table(con, manifest)
    return RunData(
        run,
        manifest,
        con,
        snapshot or Path(manifest.snapshot.path),
        policies or Path(manifest.rules.path),
    )


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _policy_table(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> None:
    """`run_items` and `run_conditions`: titles, departments and condition texts from the manifest."""
    items, conditions = [], []
    for p in manifest.policies:
        for i in p.items:
            title = p.title if len(p.items) == 1 else f"{p.title}·{i.title}"
            items.append((p.id, i.id, p.title, i.title, title, p.department))
            for c in [*p.conditions, *i.conditions]:
                conditions.append((p.id, i.id, c.id, c.text, c.clause))
    con.execute(
        "CREATE TABLE run_items (policy_id VARCHAR, item_id VARCHAR, policy_title VARCHAR, "
        "item_title VARCHAR, title VARCHAR, department VARCHAR)"
    )
    if items:
        con.executemany("INSERT INTO run_items VALUES (?, ?, ?, ?, ?, ?)", items)
    con.execute(
        "CREATE TABLE run_conditions (policy_id VARCHAR, item_id VARCHAR, condition_id VARCHAR, "
        "text VARCHAR, clause VARCHAR)"
    )
    if conditions:
        con.executemany("INSERT INTO run_conditions VALUES (?, ?, ?, ?, ?)", conditions)


# --- coverage ------------------------------------------------------------------------------------------


def item_coverage(run: RunData) -> pd.DataFrame:
    """Per item: candidates, money, share of all enterprises reached, near-misses and missing data.

    `reach` says "无人" (nobody), "极少" (fewer than NOBODY_SHARE), "过半" (at least EVERYBODY_SHARE).
    """
    df = run.query(
        """
        WITH c AS (SELECT policy_id, item_id, count(*) AS n, sum(amount) AS amount
                   FROM run_candidates GROUP BY ALL),
             nm AS (SELECT policy_id, item_id, count(*) AS n FROM run_near_misses GROUP BY ALL),
             md AS (SELECT policy_id, item_id, count(*) AS n FROM run_missing_data GROUP BY ALL)
        SELECT i.policy_id, i.item_id, i.title, i.department,
          coalesce(c.n, 0) AS candidates, coalesce(c.amount, 0)::DECIMAL(18, 2) AS amount,
          coalesce(nm.n, 0) AS near_misses, coalesce(md.n, 0) AS missing_data
        FROM run_items i
        LEFT JOIN c USING (policy_id, item_id) LEFT JOIN nm USING (policy_id, item_id)
        LEFT JOIN md USING (policy_id, item_id)
        ORDER BY amount DESC, policy_id, item_id
        """
    )
    df["share"] = df["candidates"] / max(run.enterprises, 1)
    df["reach"] = [_reach(n, s) for n, s in zip(df["candidates"], df["share"], strict=True)]
    return df


def _reach(candidates: int, share: float) -> str:
    if candidates == 0:
        return "无人"
    if share < NOBODY_SHARE:
        return "极少"
    if share >= EVERYBODY_SHARE:
        return "过半"
    return ""


def _dimensions(run: RunData) -> str:
    """A table uscc, policy_id, region, industry_section, size_class: each candidate's profile keys."""
    years = {p.id: p.assessment_year for p in run.policies.values()}
    parts = []
    for year in sorted(set(years.values())):
        table = run.profile(year)
        ids = ", ".join(f"'{_sql_text(pid)}'" for pid, y in years.items() if y == year)
        parts.append(
            f"SELECT c.policy_id, c.item_id, c.uscc, c.amount, "
            f"SUBSTRING(p.region_code, 1, 4) || '00' AS region, p.industry_section, p.size_class "
            f"FROM run_candidates c JOIN {table} p USING (uscc) WHERE c.policy_id IN ({ids})"
        )
    run.con.execute(f"CREATE OR REPLACE TEMP VIEW run_candidate_keys AS {' UNION ALL '.join(parts)}")
    return "run_candidate_keys"


def _label(dimension: str, key: Any) -> str:
    if key is None or pd.isna(key):
        return UNKNOWN
    code = str(key)
    if dimension == "region":
        return region_name(code) or code
    if dimension == "industry_section":
        name = industry_name(code)
        return f"{code} {name}" if name else code
    return SIZE_LABELS.get(code, code)


def coverage_by(run: RunData, dimension: str, *, per_item: bool = False) -> pd.DataFrame:
    """Candidates and money by region (prefecture), industry section or size class.

    With `per_item`, one row per item and key; otherwise enterprises are counted once over all items.
    `enterprises` is every enterprise of the snapshot with that key (size class as of the first
    assessment year), so `share` is the part of them that gets something.
    """
    if dimension not in DIMENSIONS:
        raise MatchError(f"未知维度 {dimension}，可选：{', '.join(DIMENSIONS)}")
    keys = _dimensions(run)
    base = run.profile(min(p.assessment_year for p in run.policies.values()))
    key_sql = "SUBSTRING(region_code, 1, 4) || '00'" if dimension == "region" else dimension
    group = "policy_id, item_id, " if per_item else ""
    title = ", i.title" if per_item else ""
    join = "JOIN run_items i USING (policy_id, item_id)" if per_item else ""
    df = run.query(
        f"""
        WITH pop AS (SELECT {key_sql} AS key, count(*) AS enterprises FROM {base} GROUP BY ALL),
             got AS (SELECT {group}{dimension} AS key, count(DISTINCT uscc) AS recipients,
                       sum(amount)::DECIMAL(18, 2) AS amount FROM {keys} GROUP BY ALL)
        SELECT {group}got.key{title}, coalesce(pop.enterprises, 0) AS enterprises, recipients, amount
        FROM got LEFT JOIN pop ON pop.key IS NOT DISTINCT FROM got.key {join}
        ORDER BY {group}amount DESC
        """
    )
    df.insert(df.columns.get_loc("key") + 1, "label", [_label(dimension, k) for k in df["key"]])
    df["share"] = [r / e if e else None for r, e in zip(df["recipients"], df["enterprises"], strict=True)]
    return df


# --- concentration -------------------------------------------------------------------------------------


def money_by_recipient(run: RunData, policy_id: str | None = None) -> pd.DataFrame:
    """Each recipient's total over all items (or one policy's), largest first."""
    where = "WHERE policy_id = ?" if policy_id else ""
    return run.query(
        f"SELECT uscc, sum(amount)::DECIMAL(18, 2) AS amount FROM run_candidates {where} "
        "GROUP BY uscc ORDER BY amount DESC, uscc",
        [policy_id] if policy_id else [],
    )


def top_share(amounts: Iterable[Decimal], share: float = TOP_SHARE) -> Decimal:
    """The part of the money that goes to the top `share` of recipients (at least one recipient)."""
    ordered = sorted(amounts, reverse=True)
    total = sum(ordered, ZERO)
    if not ordered or total == 0:
        return Decimal(0)
    top = max(1, round(len(ordered) * share))
    return sum(ordered[:top], ZERO) / total


def concentration(run: RunData) -> pd.DataFrame:
    """Per policy and over all: recipients, money, and the share of money to the top 10% of recipients."""
    rows = []
    titles = {p.id: p.title for p in run.manifest.policies}
    for pid in [None, *sorted(titles)]:
        money = money_by_recipient(run, pid)["amount"].tolist()
        rows.append(
            {
                "policy_id": pid or "全部",
                "title": titles.get(pid or "", "全部政策"),
                "recipients": len(money),
                "amount": sum(money, ZERO),
                "top_share": top_share(money),
            }
        )
    return pd.DataFrame(rows)


def lorenz(run: RunData, points: int = 100) -> pd.DataFrame:
    """The Lorenz curve of money over recipients (smallest first): recipient share → money share."""
    money = sorted(money_by_recipient(run)["amount"].tolist())
    total = sum(money, ZERO)
    n = len(money)
    rows = [(0.0, 0.0)]
    if n and total:
        cumulative, acc = [], ZERO
        for m in money:
            acc += m
            cumulative.append(acc)
        for k in range(1, points + 1):
            idx = max(1, round(n * k / points))
            rows.append((idx / n, float(cumulative[idx - 1] / total)))
    return pd.DataFrame(rows, columns=["recipients", "money"])


# --- near-misses ---------------------------------------------------------------------------------------


def blockers(run: RunData) -> pd.DataFrame:
    """Per item and condition: near-misses it alone blocks, its share of the item's, and its text.

    `top` marks the condition that blocks most near-misses of its item. Needs only the run folder.
    """
    df = run.query(
        """
        WITH n AS (SELECT policy_id, item_id, condition_id, count(*) AS near_misses
                   FROM run_near_misses GROUP BY ALL)
        SELECT n.policy_id, n.item_id, i.title, n.condition_id, c.text, c.clause, n.near_misses,
          n.near_misses / sum(n.near_misses) OVER (PARTITION BY n.policy_id, n.item_id) AS share,
          row_number() OVER (PARTITION BY n.policy_id, n.item_id
                             ORDER BY n.near_misses DESC, n.condition_id) = 1 AS top
        FROM n JOIN run_items i USING (policy_id, item_id)
        LEFT JOIN run_conditions c USING (policy_id, item_id, condition_id)
        ORDER BY n.near_misses DESC, n.policy_id, n.item_id, n.condition_id
        """
    )
    return df


@dataclass(frozen=True)
class Threshold:
    """One comparison of a field with a constant inside a condition, e.g. `layoff_rate <= 0.055`."""

    field: str
    op: str  # one of < <= > >=, with the field on the left
    value: Decimal


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPS = {"ArithmeticComparisonExpression"}
_COMPARISONS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def thresholds(rule: str) -> list[Threshold]:
    """The numeric thresholds a condition compares fields with (field on the left, as written or flipped)."""
    out = []
    for node in walk(parse(rule).root):
        if type(node).__name__ not in _OPS:
            continue
        op = _COMPARISONS.get(str(node.type).lower())
        if op is None:
            continue
        left, right = node.left, node.right
        if isinstance(left, ast.SymbolExpression) and isinstance(right, ast.FloatExpression):
            out.append(Threshold(left.name, op, Decimal(str(right.value))))
        elif isinstance(right, ast.SymbolExpression) and isinstance(left, ast.FloatExpression):
            out.append(Threshold(right.name, _FLIP[op], Decimal(str(left.value))))
    return out


def _condition(policy: Policy, item_id: str, condition_id: str) -> str:
    for c in [*policy.conditions, *policy.item(item_id).conditions]:
        if c.id == condition_id:
            return c.rule
    raise MatchError(f"政策 {policy.id} 事项 {item_id} 没有条件 {condition_id}")


DISTANCE_COLUMNS = [
    "policy_id",
    "item_id",
    "condition_id",
    "uscc",
    "field",
    "threshold",
    "value",
    "gap",
    "relative",
]


def _threshold_gaps(pid: str, item_id: str, cid: str, n: int, t: Threshold) -> str:
    """One threshold's gap for every near-miss its condition blocks (value text 'field=v; ...')."""
    limit = format(t.value, "f")
    value = f"TRY_CAST(regexp_extract(value, '(?:^|; ){t.field}=([^;]*)', 1) AS DOUBLE)"
    gap = f"greatest(v - {limit}, 0)" if t.op in ("<", "<=") else f"greatest({limit} - v, 0)"
    relative = "NULL" if t.value == 0 else f"{gap} / {format(abs(t.value), 'f')}"
    return (
        f"SELECT policy_id, item_id, condition_id, uscc, '{t.field}' AS field, '{t.op} {limit}' AS threshold, "
        f"v AS value, {gap} AS gap, {relative} AS relative, {n} AS k "
        f"FROM (SELECT *, {value} AS v FROM run_near_misses WHERE policy_id = '{_sql_text(pid)}' "
        f"AND item_id = '{_sql_text(item_id)}' AND condition_id = '{_sql_text(cid)}')"
    )


def distances(run: RunData) -> pd.DataFrame:
    """Each near-miss whose blocking condition has numeric thresholds, with the nearest one it misses.

    For a condition like `layoff_rate <= 0.055 or (insured_start <= 30 and layoff_rate <= 0.2)` the
    nearest threshold is the one with the smallest relative gap (gap / |threshold|) among those the
    enterprise misses (ties: the one written first). Conditions with no numeric threshold (a flag, a
    region) have no distance.
    """
    found = run.con.execute(
        "SELECT DISTINCT policy_id, item_id, condition_id FROM run_near_misses ORDER BY ALL"
    ).fetchall()
    parts = []
    for pid, item_id, cid in found:
        for n, t in enumerate(thresholds(_condition(run.policies[pid], item_id, cid))):
            parts.append(_threshold_gaps(pid, item_id, cid, n, t))
    if not parts:
        return pd.DataFrame(columns=DISTANCE_COLUMNS)
    nearest = "(coalesce(relative, 'inf'::DOUBLE), k)"
    return run.query(
        f"""
        SELECT policy_id, item_id, condition_id, uscc, arg_min(field, {nearest}) AS field,
          arg_min(threshold, {nearest}) AS threshold, arg_min(value, {nearest}) AS value,
          arg_min(gap, {nearest}) AS gap, arg_min(relative, {nearest}) AS relative
        FROM ({" UNION ALL ".join(parts)}) WHERE gap > 0
        GROUP BY ALL ORDER BY ALL
        """
    )


def distance_summary(run: RunData, close: float = CLOSE) -> pd.DataFrame:
    """Per item and condition with thresholds: near-misses measured, median gap, and how many are close."""
    d = distances(run)
    if d.empty:
        return pd.DataFrame(
            columns=[
                "policy_id",
                "item_id",
                "condition_id",
                "field",
                "threshold",
                "measured",
                "median_gap",
                "close",
            ]
        )
    g = d.groupby(["policy_id", "item_id", "condition_id", "field", "threshold"], as_index=False)
    out = g.agg(
        measured=("uscc", "size"),
        median_gap=("gap", "median"),
        close=("relative", lambda r: int((r <= close).sum())),
    )
    return out.sort_values("close", ascending=False, ignore_index=True)


# --- threshold sweeps -----------------------------------------------------------------------------------


def with_threshold(policy: Policy, condition_id: str, field_name: str, old: Decimal, new: Decimal) -> Policy:
    """A copy of `policy` whose condition compares `field_name` with `new` wherever it compared with `old`."""
    pattern = re.compile(rf"\b{re.escape(field_name)}\s*(<=|<|>=|>)\s*{re.escape(format(old, 'f'))}(?![0-9])")

    def change(rule: str) -> str:
        out, n = pattern.subn(lambda m: f"{field_name} {m.group(1)} {format(new, 'f')}", rule)
        if n == 0:
            raise MatchError(f"条件 {condition_id} 中没有 {field_name} 与 {old} 的比较：{rule}")
        parse(out)
        return out

    def conds(items: list[Any]) -> list[Any]:
        return [c.model_copy(update={"rule": change(c.rule)}) if c.id == condition_id else c for c in items]

    found = any(c.id == condition_id for c in policy.conditions) or any(
        c.id == condition_id for i in policy.items for c in i.conditions
    )
    if not found:
        raise MatchError(f"政策 {policy.id} 没有条件 {condition_id}")
    items = [i.model_copy(update={"conditions": conds(i.conditions)}) for i in policy.items]
    return policy.model_copy(update={"conditions": conds(policy.conditions), "items": items})


def sweep(
    run: RunData, policy_id: str, condition_id: str, field_name: str, values: Sequence[Decimal | str]
) -> pd.DataFrame:
    """What each new threshold value would give against the policy as run: enterprises and money gained.

    The current threshold is the one of `thresholds()` on `field_name` in the condition (the first one).
    Each value is an impact simulation (`matcher.simulate.simulate`) of the changed policy on the snapshot.
    """
    policy = run.policies[policy_id]
    rule = next(
        (
            c.rule
            for c in [*policy.conditions, *(c for i in policy.items for c in i.conditions)]
            if c.id == condition_id
        ),
        None,
    )
    if rule is None:
        raise MatchError(f"政策 {policy_id} 没有条件 {condition_id}")
    current = next((t.value for t in thresholds(rule) if t.field == field_name), None)
    if current is None:
        raise MatchError(f"条件 {condition_id} 没有 {field_name} 的数值门槛：{rule}")
    _ = run.snapshot
    rows = []
    for v in values:
        new = Decimal(str(v))
        impact = simulate(
            run.con, with_threshold(policy, condition_id, field_name, current, new), policy, run.as_of
        )
        rows.append(
            {
                "threshold": new,
                "current": current,
                "enterprises": impact.new_enterprises,
                "gained": impact.gained,
                "lost": impact.lost,
                "amount": impact.new_amount,
                "delta_amount": impact.delta_amount,
            }
        )
    return pd.DataFrame(rows)


# --- missing data ----------------------------------------------------------------------------------------


def missing_fields(run: RunData) -> pd.DataFrame:
    """Per missing field: its label, source table, owning department, enterprises and (item, enterprise) pairs."""
    df = run.query(
        """
        SELECT f AS field, count(DISTINCT uscc) AS enterprises, count(*) AS pairs,
          count(DISTINCT policy_id || '/' || item_id) AS items
        FROM (SELECT policy_id, item_id, uscc, unnest(fields) AS f FROM run_missing_data)
        GROUP BY f ORDER BY pairs DESC, f
        """
    )
    df.insert(1, "label", [CATALOG[f].label if f in CATALOG else f for f in df["field"]])
    df.insert(2, "table", [CATALOG[f].table if f in CATALOG else None for f in df["field"]])
    df.insert(3, "department", [CATALOG[f].department if f in CATALOG else UNKNOWN for f in df["field"]])
    return df


def _held_table(run: RunData) -> str:
    """`run_missing_amounts`: each missing-data pair with its amount where the amount's fields are known."""
    parts = []
    for p in run.policies.values():
        table = run.profile(p.assessment_year)
        for item in p.items:
            amount = amount_sql(item).sql("duckdb")
            parts.append(
                f"SELECT m.policy_id, m.item_id, m.uscc, m.fields, {amount} AS amount FROM run_missing_data m "
                f"JOIN {table} USING (uscc) WHERE m.policy_id = '{_sql_text(p.id)}' "
                f"AND m.item_id = '{_sql_text(item.id)}'"
            )
    run.con.execute(f"CREATE OR REPLACE TEMP TABLE run_missing_amounts AS {' UNION ALL '.join(parts)}")
    return "run_missing_amounts"


def money_held_back(run: RunData) -> pd.DataFrame:
    """Per item: missing-data pairs and the money they would get if the data confirmed them.

    `amount` sums the item's amount (before budget allocation) over pairs whose amount could be computed;
    `amount_unknown` counts pairs whose amount itself reads a missing field.
    """
    table = _held_table(run)
    return run.query(
        f"""
        SELECT i.policy_id, i.item_id, i.title, i.department, count(m.uscc) AS pairs,
          coalesce(sum(m.amount), 0)::DECIMAL(18, 2) AS amount, count(m.uscc) - count(m.amount) AS amount_unknown
        FROM run_items i JOIN {table} m USING (policy_id, item_id)
        GROUP BY ALL ORDER BY amount DESC, i.policy_id, i.item_id
        """
    )


def missing_by_department(run: RunData) -> pd.DataFrame:
    """Per department that owns a missing field: enterprises, pairs and money held back, and which fields.

    A pair missing fields of two departments counts under both; within a department it counts once.
    """
    table = _held_table(run)
    owner = {name: f.department for name, f in CATALOG.items()}
    run.con.execute("CREATE OR REPLACE TEMP TABLE run_field_owner (field VARCHAR, department VARCHAR)")
    run.con.executemany("INSERT INTO run_field_owner VALUES (?, ?)", list(owner.items()))
    df = run.query(
        f"""
        WITH pairs AS (
          SELECT DISTINCT o.department, m.policy_id, m.item_id, m.uscc, m.amount
          FROM (SELECT *, unnest(fields) AS field FROM {table}) m JOIN run_field_owner o USING (field)
        ), fields AS (
          SELECT o.department, string_agg(DISTINCT f, '、' ORDER BY f) AS fields
          FROM (SELECT unnest(fields) AS f FROM run_missing_data) JOIN run_field_owner o ON o.field = f
          GROUP BY ALL
        )
        SELECT department, count(DISTINCT uscc) AS enterprises, count(*) AS pairs,
          coalesce(sum(amount), 0)::DECIMAL(18, 2) AS amount, any_value(fields.fields) AS fields
        FROM pairs JOIN fields USING (department) GROUP BY department ORDER BY amount DESC, department
        """
    )
    return df


# --- snapshot data quality ------------------------------------------------------------------------------


def table_quality(report: SnapshotReport) -> pd.DataFrame:
    """Per snapshot table: rows read, accepted and rejected, the rejected share and the owning department."""
    rows = []
    for t in report.tables.values():
        rejected = t.rows_read - t.rows_accepted
        rows.append(
            {
                "table": t.name,
                "table_label": TABLE_LABELS[t.name],
                "department": DEPARTMENTS.get(t.name, "（外部拨付记录）"),
                "file": t.file,
                "rows_read": t.rows_read,
                "rows_accepted": t.rows_accepted,
                "rows_rejected": rejected,
                "rejected_share": rejected / t.rows_read if t.rows_read else 0.0,
            }
        )
    return pd.DataFrame(rows)


def rejections(report: SnapshotReport) -> pd.DataFrame:
    """Per table and validation rule: rows rejected, with the rule's name and the first example."""
    rows = []
    for t in report.tables.values():
        for rule, n in t.rejected.items():
            examples = t.examples.get(rule, [])
            first = examples[0] if examples else None
            rows.append(
                {
                    "table": t.name,
                    "table_label": TABLE_LABELS[t.name],
                    "rule": rule,
                    "rule_name": RULES[rule],
                    "rows": n,
                    "example": f"第{first['row']}行 {first['column']}={first['value']}" if first else "",
                }
            )
    columns = ["table", "table_label", "rule", "rule_name", "rows", "example"]
    return pd.DataFrame(rows, columns=columns).sort_values("rows", ascending=False, ignore_index=True)


def column_label(column: str) -> str:
    """The Chinese name of a snapshot column: the catalog field's label, or the raw column's."""
    if column in CATALOG:
        return CATALOG[column].label
    return RAW_COLUMN_LABELS.get(column, column)


def null_rates(report: SnapshotReport) -> pd.DataFrame:
    """Per table and column: NULLs among accepted rows and their share."""
    rows = []
    for t in report.tables.values():
        for column, n in t.nulls.items():
            rows.append(
                {
                    "table": t.name,
                    "table_label": TABLE_LABELS[t.name],
                    "column": column,
                    "column_label": column_label(column),
                    "rows_accepted": t.rows_accepted,
                    "nulls": n,
                    "rate": n / t.rows_accepted if t.rows_accepted else 0.0,
                }
            )
    return pd.DataFrame(rows).sort_values(
        ["rate", "table", "column"], ascending=[False, True, True], ignore_index=True
    )
