"""The policy supermarket (政策超市): every published policy in one public, searchable list.

What the public sees of a policy is its latest published version. Publishing indexes it (`index_policy`);
`rebuild` and `sync` make the index again from the published versions (`zhida supermarket reindex`).

Search. Chinese has no spaces, so the text of a policy (title, tags, category, summary, audience, item
titles, department, condition texts, source document) is cut into terms three ways: jieba's search-mode
words (稳岗返还 → 稳岗, 返还), every single CJK character and every pair of adjacent CJK characters
(bigrams), plus runs of Latin letters and digits. Each (policy, term) is one row of `policy_token` with a
weight: the sum over the fields it occurs in of the field's weight (title 10, tags 6, category and
summary 4, audience and item titles 3, department 2, conditions and source 1), doubled where jieba found
it as a word. A query is cut into terms the same way: each run of CJK characters must be found whole,
approximated as "all its bigrams occur in the policy" (a single character must occur itself); runs of
letters and digits must occur as such. So 稳岗 finds 失业保险稳岗返还 although jieba does not cut 稳岗 out
of every text, and 稳岗返还 needs 稳岗, 岗返 and 返还. Relevance is the sum of the weights of the matched
terms (jieba's words of the query count too, as a bonus). It is plain SQL over one covering index, the
same on SQLite and PostgreSQL.

Amount. A policy's `max_amount` is the most one item pays one enterprise: the item's fixed amount or its
cap, whichever is lower; it is unknown (NULL, shown as 按公式计算, sorted last) when any item's amount is a
formula without a cap, because then no upper bound can be promised. Sorting by amount uses it; the budget
is shown beside it but not sorted on.

Filters. Category, department, still open on a day (`valid_to` on or after it), and region, industry
section and size class from `rules.scope` (what the conditions say; a policy that does not restrict a
dimension matches every value of it).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

import jieba
from sqlalchemy import and_, case, delete, func, literal, not_, nulls_last, or_, select
from sqlalchemy import text as sql
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from matcher.codes import industry_list, regions
from payouts.bulkload import insert_columns
from portal.models import PolicyListing, PolicyToken
from rules import formats
from rules.catalog import CATALOG
from rules.errors import ZhidaError
from rules.expressions import parse
from rules.policy import CATEGORIES, Item, Policy
from rules.scope import Scope, policy_scope

jieba.setLogLevel(logging.WARNING)

SORTS = {"relevance": "相关度", "amount": "金额"}
SIZE_LABELS = {code: f"{label}企业" for code, label in formats.SIZE_LABELS.items()}  # 大型企业 …
FIELD_WEIGHTS = {
    "title": 10,
    "tags": 6,
    "category": 4,
    "summary": 4,
    "audience": 3,
    "items": 3,
    "department": 2,
    "conditions": 1,
    "source": 1,
}
PER_PAGE = 20
MAX_QUERY = 100  # characters
MAX_TOKEN = 32  # characters; longer words are not indexed (their bigrams are)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN = re.compile(r"[0-9a-z]+")
_TERM = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_REGION = re.compile(r"[0-9]{2}(?:[0-9]{2}){0,2}")
_FIELD_NAME = re.compile(r"\b[a-z_][a-z0-9_]*\b")


class SearchError(ZhidaError):
    """A search or filter value the supermarket does not know."""


# --- terms ------------------------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Full-width letters and digits to ASCII, lower case: the form both the index and queries use."""
    return unicodedata.normalize("NFKC", text).lower()


@lru_cache(maxsize=65536)
def text_terms(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The index terms of one text: (single CJK characters and bigrams, words found by jieba or Latin runs)."""
    text = normalize(text)
    grams: set[str] = set()
    for run in _CJK.findall(text):
        grams.update(run)
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    words = {w for w in _LATIN.findall(text) if len(w) <= MAX_TOKEN}
    words.update(w for w in jieba.cut_for_search(text) if 2 <= len(w) <= MAX_TOKEN and _TERM.fullmatch(w))
    return frozenset(grams), frozenset(words)


def _fields(policy: Policy) -> dict[str, list[str]]:
    conditions = [*policy.conditions, *(c for item in policy.items for c in item.conditions)]
    return {
        "title": [policy.title],
        "tags": list(policy.tags),
        "category": [policy.category] if policy.category else [],
        "summary": [policy.summary] if policy.summary else [],
        "audience": [policy.audience] if policy.audience else [],
        "items": [item.title for item in policy.items],
        "department": [policy.department],
        "conditions": [c.text for c in conditions],
        "source": [policy.source.document],
    }


def policy_terms(policy: Policy) -> dict[str, int]:
    """Every index term of a policy with its weight: per field it occurs in, the field's weight, doubled
    for a word."""
    weights: dict[str, int] = {}
    for name, texts in _fields(policy).items():
        weight = FIELD_WEIGHTS[name]
        grams: set[str] = set()
        words: set[str] = set()
        for text in texts:
            g, w = text_terms(text)
            grams |= g
            words |= w
        for term in grams - words:
            weights[term] = weights.get(term, 0) + weight
        for term in words:
            weights[term] = weights.get(term, 0) + 2 * weight
    return weights


@dataclass(frozen=True)
class QueryTerms:
    """A query cut into terms: each group in `required` must be found whole; `bonus` only adds to the score."""

    required: tuple[tuple[str, ...], ...]
    bonus: tuple[str, ...]

    @property
    def all(self) -> list[str]:
        return sorted({*self.bonus, *(t for group in self.required for t in group)})


def query_terms(text: str) -> QueryTerms:
    """The terms a query needs: per CJK run its bigrams (or the character itself), per Latin run itself."""
    text = normalize(text)[:MAX_QUERY]
    required: list[tuple[str, ...]] = []
    for run in _TERM.findall(text):
        for part in re.findall(r"[0-9a-z]+|[^0-9a-z]+", run):
            if _LATIN.fullmatch(part):
                group: tuple[str, ...] = (part[:MAX_TOKEN],)
            elif len(part) == 1:
                group = (part,)
            else:
                group = tuple(sorted({part[i : i + 2] for i in range(len(part) - 1)}))
            if group not in required:
                required.append(group)
    bonus = tuple(
        sorted({w for w in jieba.cut_for_search(text) if 2 <= len(w) <= MAX_TOKEN and _TERM.fullmatch(w)})
    )
    return QueryTerms(tuple(required), bonus)


# --- what is listed -----------------------------------------------------------------------------------------


def fixed_amount(item: Item) -> Decimal | None:
    """The item's amount when it is a constant (`amount: 200000`), in yuan; None for a formula."""
    if item.amount is None:  # set by the reviewing department, within the cap
        return None
    root = parse(item.amount).root
    if type(root).__name__ != "FloatExpression":
        return None
    return Decimal(str(root.value)).quantize(Decimal("0.01"))


def item_bound(item: Item) -> Decimal | None:
    """The most the item pays one enterprise: its fixed amount or its cap, whichever is lower."""
    bounds = [b for b in (fixed_amount(item), item.cap) if b is not None]
    return min(bounds) if bounds else None


def max_amount(policy: Policy) -> Decimal | None:
    """The most one item of the policy pays one enterprise; None when an item is an uncapped formula."""
    bounds = [item_bound(item) for item in policy.items]
    if not bounds or any(b is None for b in bounds):  # 权益 and 资质 pay nothing
        return None
    return max(b for b in bounds if b is not None)


def _codes(values: Iterable[str] | None) -> str | None:
    return None if values is None else "," + "".join(f"{v}," for v in sorted(values))


def _listing_values(policy: Policy, published_at: dt.datetime, now: dt.datetime) -> dict[str, object]:
    scope = policy_scope(policy)
    return {
        "policy_id": policy.id,
        "version": policy.version,
        "title": policy.title,
        "department": policy.department,
        "category": policy.category,
        "summary": policy.summary,
        "valid_from": policy.valid_from,
        "valid_to": policy.valid_to,
        "max_amount": max_amount(policy),
        "budget": policy.budget,
        "regions": _codes(scope.regions),
        "regions_excluded": _codes(scope.regions_excluded) if scope.regions_excluded else None,
        "sections": _codes(scope.sections),
        "sizes": _codes(scope.sizes),
        "published_at": published_at,
        "indexed_at": now,
    }


def _insert_terms(session: Session, rows: list[tuple[int, dict[str, int]]]) -> int:
    ids: list[int] = []
    tokens: list[str] = []
    weights: list[int] = []
    for listing_id, terms in rows:
        for token, weight in terms.items():
            ids.append(listing_id)
            tokens.append(token)
            weights.append(weight)
    return insert_columns(
        session, PolicyToken.__table__, {"listing_id": ids, "token": tokens, "weight": weights}
    )


def index_policy(
    session: Session, policy: Policy, published_at: dt.datetime, now: dt.datetime
) -> PolicyListing:
    """List `policy` (a published version) in place of its older version; a newer listed version stays."""
    listing = session.scalar(select(PolicyListing).where(PolicyListing.policy_id == policy.id))
    if listing is not None and listing.version > policy.version:
        return listing
    values = _listing_values(policy, published_at, now)
    if listing is None:
        listing = PolicyListing(**values)
        session.add(listing)
        session.flush()
    else:
        session.execute(delete(PolicyToken).where(PolicyToken.listing_id == listing.id))
        for key, value in values.items():
            setattr(listing, key, value)
        session.flush()
    assert listing.id is not None
    _insert_terms(session, [(listing.id, policy_terms(policy))])
    return listing


def remove(session: Session, policy_ids: Iterable[str]) -> int:
    """Take policies off the list; how many were listed."""
    ids = list(session.scalars(select(PolicyListing.id).where(PolicyListing.policy_id.in_(list(policy_ids)))))
    if ids:
        session.execute(delete(PolicyToken).where(PolicyToken.listing_id.in_(ids)))
        session.execute(delete(PolicyListing).where(PolicyListing.id.in_(ids)))
    return len(ids)


def listed_versions(session: Session) -> dict[str, int]:
    """Policy id → the version the supermarket lists."""
    rows = session.execute(select(PolicyListing.policy_id, PolicyListing.version)).all()
    return {policy_id: version for policy_id, version in rows}


def rebuild(session: Session, published: Iterable[tuple[Policy, dt.datetime]], now: dt.datetime) -> int:
    """Make the whole index again from (latest published version, when it was published); how many listed."""
    session.execute(delete(PolicyToken))
    session.execute(delete(PolicyListing))
    policies = list(published)
    listings = [PolicyListing(**_listing_values(p, at, now)) for p, at in policies]
    session.add_all(listings)
    session.flush()
    _insert_terms(
        session, [(listing.id, policy_terms(p)) for listing, (p, _) in zip(listings, policies, strict=True)]
    )
    if session.connection().dialect.name == "postgresql":
        # Statistics for the new contents now, not when autovacuum comes by: the planner needs them.
        session.execute(sql("ANALYZE policy_listing"))
        session.execute(sql("ANALYZE policy_token"))
    return len(listings)


# --- search -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """One search: the words, the filters, the order and the page. Empty strings count as "not given"."""

    q: str = ""
    category: str | None = None
    department: str | None = None
    region: str | None = None
    industry: str | None = None  # section letter (门类)
    size: str | None = None
    open_only: bool = False
    sort: str = "relevance"
    page: int = 1
    per_page: int = PER_PAGE

    def checked(self) -> Search:
        """The search with empty values dropped; SearchError for a value that is not known."""
        values = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in vars(self).items()}
        values["q"] = values["q"] or ""
        if len(values["q"]) > MAX_QUERY:
            raise SearchError(f"搜索词过长：最多 {MAX_QUERY} 个字")
        if values["category"] is not None and values["category"] not in CATEGORIES:
            raise SearchError(f"没有政策分类“{values['category']}”，可选：{'、'.join(CATEGORIES)}")
        if values["region"] is not None and not _REGION.fullmatch(values["region"]):
            raise SearchError("地区应为 2、4 或 6 位行政区划代码，如 43（湖南省）、4301（长沙市）")
        if values["industry"] is not None:
            values["industry"] = values["industry"].upper()
            if not re.fullmatch(r"[A-T]", values["industry"]):
                raise SearchError("行业应为国民经济行业门类字母 A–T")
        if values["size"] is not None and values["size"] not in SIZE_LABELS:
            raise SearchError(f"企业规模应为 {'、'.join(SIZE_LABELS)} 之一")
        if values["sort"] is None:
            values["sort"] = "relevance"
        if values["sort"] not in SORTS:
            raise SearchError("排序应为 relevance（相关度）或 amount（金额）")
        if values["page"] is None or values["page"] < 1:
            raise SearchError("页码应为正整数")
        return Search(**values)


@dataclass(frozen=True)
class Hit:
    """One policy in a result list."""

    policy_id: str
    version: int
    title: str
    department: str
    category: str | None
    summary: str | None
    valid_from: dt.date
    valid_to: dt.date
    max_amount: Decimal | None
    budget: Decimal | None
    score: int
    status: str  # 有效 | 未开始 | 已截止


@dataclass(frozen=True)
class Results:
    """A page of hits and how many there are in all."""

    search: Search
    hits: list[Hit]
    total: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, math.ceil(self.total / self.search.per_page)))


def status_on(valid_from: dt.date, valid_to: dt.date, day: dt.date) -> str:
    """Whether a policy is in force on `day`, in the words the pages use."""
    if day < valid_from:
        return "未开始"
    return "已截止" if day > valid_to else "有效"


def _in_list(column: ColumnElement[str | None], value: str) -> ColumnElement[bool]:
    return or_(column.is_(None), column.like(f"%,{value},%"))


def _filters(s: Search, today: dt.date) -> list[ColumnElement[bool]]:
    L = PolicyListing
    out: list[ColumnElement[bool]] = []
    if s.category:
        out.append(L.category == s.category)
    if s.department:
        out.append(L.department == s.department)
    if s.open_only:
        out.append(L.valid_to >= today)
    if s.industry:
        out.append(_in_list(L.sections, s.industry))
    if s.size:
        out.append(_in_list(L.sizes, s.size))
    if s.region:
        code = s.region
        ancestors = [code[:n] for n in range(1, len(code))]
        # Listed for the region itself, a region inside it, or a region it lies in; and not cut out.
        out.append(
            or_(
                L.regions.is_(None),
                L.regions.like(f"%,{code}%"),
                *(L.regions.like(f"%,{a},%") for a in ancestors),
            )
        )
        out.append(
            or_(
                L.regions_excluded.is_(None),
                not_(or_(*(L.regions_excluded.like(f"%,{a},%") for a in [*ancestors, code]))),
            )
        )
    return out


def search(session: Session, wanted: Search, today: dt.date) -> Results:
    """One page of the listed policies that match the words and the filters, best first."""
    s = wanted.checked()
    L = PolicyListing
    terms = query_terms(s.q) if s.q else QueryTerms((), ())
    if s.q and not terms.required:
        return Results(s, [], 0)  # only punctuation: nothing can match
    if terms.required:
        T = PolicyToken
        found = [func.sum(case((T.token.in_(group), 1), else_=0)) >= len(group) for group in terms.required]
        scores = (
            select(T.listing_id, func.sum(T.weight).label("score"))
            .where(T.token.in_(terms.all))
            .group_by(T.listing_id)
            .having(and_(*found))
            .subquery()
        )
        score = scores.c.score
        stmt = select(L.id, score, func.count().over()).join(scores, scores.c.listing_id == L.id)
    else:
        score = literal(0)
        stmt = select(L.id, score.label("score"), func.count().over())
    stmt = stmt.where(*_filters(s, today))
    if s.sort == "amount":
        order = [nulls_last(L.max_amount.desc()), score.desc(), L.policy_id]
    elif terms.required:
        order = [score.desc(), nulls_last(L.max_amount.desc()), L.policy_id]
    else:  # no words: what is in force first, newest first
        order = [case((L.valid_to >= today, 0), else_=1), L.valid_to.desc(), L.policy_id]
    # Sort narrow rows (id, score), then read the page's rows only: sorting whole rows costs twice as much.
    page = session.execute(stmt.order_by(*order).limit(s.per_page).offset((s.page - 1) * s.per_page)).all()
    if page:
        total = int(page[0][2])
    else:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    listings = {r.id: r for r in session.scalars(select(L).where(L.id.in_([i for i, _, _ in page])))}
    hits = [
        Hit(
            r.policy_id,
            r.version,
            r.title,
            r.department,
            r.category,
            r.summary,
            r.valid_from,
            r.valid_to,
            r.max_amount,
            r.budget,
            int(sc),
            status_on(r.valid_from, r.valid_to, today),
        )
        for r, sc in ((listings[i], sc) for i, sc, _ in page)
    ]
    return Results(s, hits, total)


# --- what the filters offer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choices:
    """The values each filter offers: (value, label) pairs."""

    categories: list[tuple[str, str]]
    departments: list[tuple[str, str]]
    regions: list[tuple[str, str]]
    industries: list[tuple[str, str]]
    sizes: list[tuple[str, str]]
    sorts: list[tuple[str, str]]


def region_name(code: str) -> str:
    """The name of a 2-, 4- or 6-digit region prefix: 43 湖南省, 4301 湖南省长沙市."""
    known = regions()
    province = known.get(code[:2].ljust(6, "0"))
    names = [province.name] if province else []
    if len(code) >= 4:
        prefecture = known.get(code[:4].ljust(6, "0"))
        if prefecture:
            names.append(prefecture.name)
    if len(code) == 6 and code[4:] != "00" and code in known:
        names.append(known[code].name)
    return "".join(names) or code


def section_names() -> dict[str, str]:
    """Industry section letter → name (门类)."""
    return {i.code: i.name for i in industry_list().industries.values() if i.level == "section"}


def choices(session: Session) -> Choices:
    """The filters' values: the five categories, the departments and regions that listed policies name."""
    departments = sorted(set(session.scalars(select(PolicyListing.department))))
    listed = set()
    for value in session.scalars(select(PolicyListing.regions).where(PolicyListing.regions.is_not(None))):
        listed |= {c for c in (value or "").split(",") if c}
    provinces = {r.code[:2] for r in regions().values() if r.level == "province"}
    codes = sorted(provinces | {c for c in listed if len(c) in (2, 4, 6)})
    return Choices(
        categories=[(c, c) for c in CATEGORIES],
        departments=[(d, d) for d in departments],
        regions=[(c, region_name(c) if len(c) == 2 else "　" + region_name(c)) for c in codes],
        industries=[(k, f"{k} {v}") for k, v in sorted(section_names().items())],
        sizes=list(SIZE_LABELS.items()),
        sorts=list(SORTS.items()),
    )


# --- one policy, in plain words ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSheet:
    """One item (兑现事项) of a policy in plain words."""

    item: Item
    fixed: Decimal | None
    amount_words: str
    cap: Decimal | None


@dataclass(frozen=True)
class PolicySheet:
    """A policy as the public detail page tells it."""

    policy: Policy
    status: str
    items: list[ItemSheet]
    max_amount: Decimal | None
    regions: str
    industries: str
    sizes: str
    payment: str
    allocation: str | None
    exclusive: str | None
    way: str = "免申即享"  # 免申即享, 快申快享, 权益 or 资质 (`delivery`)


def amount_words(expression: str) -> str:
    """An amount expression with the catalog's names for its fields: `上年度实缴失业保险费 × 0.6`."""

    def label(m: re.Match[str]) -> str:
        name = m.group(0)
        return CATALOG[name].label if name in CATALOG else name

    words = _FIELD_NAME.sub(label, expression)
    for a, b in (("$min(", "取较小值("), ("$max(", "取较大值("), ("$abs(", "绝对值("), ("[", ""), ("]", "")):
        words = words.replace(a, b)
    return words.replace(" * ", " × ").replace(" / ", " ÷ ").replace("*", "×").replace("/", "÷")


def scope_words(scope: Scope) -> tuple[str, str, str]:
    """Region, industry and size scope in words; 不限 where a dimension is not restricted."""
    if scope.regions is None:
        where = "全国（不限地区）" if not scope.regions_excluded else "不限地区"
    else:
        where = "、".join(region_name(c) for c in sorted(scope.regions)) or "无"
    if scope.regions_excluded:
        where += "（" + "、".join(region_name(c) for c in sorted(scope.regions_excluded)) + "除外）"
    names = section_names()
    industries = (
        "不限"
        if scope.sections is None
        else "、".join(names.get(s, s) for s in sorted(scope.sections)) or "无"
    )
    sizes = (
        "不限"
        if scope.sizes is None
        else "、".join(label for key, label in SIZE_LABELS.items() if key in scope.sizes) or "无"
    )
    return where, industries, sizes


def delivery(policy: Policy) -> str:
    """How the policy reaches an enterprise, in one word for a result list: its kind for 权益 and 资质,
    快申快享 when any item is applied for, else 免申即享."""
    if not policy.gives_money:
        return policy.kind or "权益"
    return "快申快享" if any(i.mode == "apply" for i in policy.items) else "免申即享"


def payment_words(policy: Policy) -> str:
    """How the policy is delivered: 免申即享 (money, or for a policy that pays nothing how it is enjoyed),
    快申快享, or for 权益 and 资质 the department's own procedure."""
    limit = policy.guide.time_limit_days if policy.guide else None
    days = f"{limit} 个工作日" if limit else "承诺时限内"
    if not policy.gives_money:
        when = f"办理时限 {days}" if limit else "办理时间以办理部门公布的安排为准"
        return f"{policy.kind}类事项，不发放资金：请按下方申兑指南向{policy.department}办理，{when}。"
    if all(i.mode == "apply" for i in policy.items):
        return (
            "快申快享：在线申请，政府部门已掌握的数据自动填入，无需再填；补全其余信息、上传材料后提交，"
            f"由有关部门在 {days}内审核办结（补正期间不计），审核通过后资金直接拨付到企业登记的对公账户。"
        )
    if any(i.mode == "apply" for i in policy.items):
        return (
            "部分事项免申即享（数据比对确定符合条件的企业，短信确认后拨付），"
            f"标注“申请”的事项快申快享：在线申请，由有关部门在 {days}内审核办结。"
        )
    if max_amount(policy) == 0:
        return (
            "不涉及资金拨付：本政策为减免、缓缴、融资或要素保障等支持。有关部门通过数据比对确定符合条件的企业"
            "并告知；企业按政策规定在申报纳税、缴费时直接享受，或向有关单位（银行、供水供电供气企业等）办理。"
        )
    if policy.confirmation == "none":
        return (
            "免申即享：无需申请，也无需确认。有关部门通过数据比对确定符合条件的企业，"
            "资金直接拨付（或按原渠道退回）到企业登记的对公账户，并以短信告知。"
        )
    return (
        "免申即享：无需申请。有关部门通过数据比对确定符合条件的企业，符合条件的企业会收到短信确认链接；"
        "打开链接核对金额和登记的对公账户，一键确认后，资金直接拨付到该账户。"
        "短信中的链接不会要求填写银行账号或密码，请勿向任何人提供验证码。"
    )


_ALLOCATION = {
    "pro_rata": "符合条件企业的应得总额超过资金总额时，按比例分配（每户按同一比例折算，分配总额不超过预算）。",
    "rank": "符合条件企业的应得总额超过资金总额时，按排序先后足额兑付，直至资金用完。",
    "none": None,
}


def describe(policy: Policy, today: dt.date) -> PolicySheet:
    """A published policy in plain words, for its public page."""
    where, industries, sizes = scope_words(policy_scope(policy))
    items = [
        ItemSheet(
            item,
            fixed_amount(item),
            amount_words(item.amount) if item.amount is not None else "由审核部门核定",
            item.cap,
        )
        for item in policy.items
    ]
    group = policy.exclusive_group or next(
        (i.exclusive_group for i in policy.items if i.exclusive_group), None
    )
    return PolicySheet(
        policy=policy,
        status=status_on(policy.valid_from, policy.valid_to, today),
        items=items,
        max_amount=max_amount(policy),
        regions=where,
        industries=industries,
        sizes=sizes,
        payment=payment_words(policy),
        allocation=_ALLOCATION[policy.allocation] if policy.budget is not None else None,
        exclusive="与同类政策就高不重复享受：同一企业只兑现金额最高的一项。" if group else None,
        way=delivery(policy),
    )


def sync_plan(published: Mapping[str, int], listed: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """What `sync` must do: the policy ids to (re)index and the ids to take off the list."""
    stale = sorted(pid for pid, v in published.items() if listed.get(pid) != v)
    gone = sorted(pid for pid in listed if pid not in published)
    return stale, gone
