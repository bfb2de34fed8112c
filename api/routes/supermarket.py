"""The public policy supermarket (政策超市), no login: search and filter every published policy (`/policies`),
read one in plain words (`/policies/{id}`); the same as JSON under `/api/public/policies`.

Pages are GET forms that work without JavaScript. Only the latest published version of a policy is shown;
drafts never are (the list is the supermarket's index, filled on publish; a page reads the published
version from the policy store).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import SessionDep, SettingsDep, StoreDep
from api.policystore import PolicyStore
from api.routes import render
from payouts.errors import NotFoundError
from portal import supermarket
from portal.supermarket import Search
from rules.policy import CATEGORIES, Condition

router = APIRouter(prefix="/api/public/policies", tags=["政策超市（公开）"])
pages = APIRouter(prefix="/policies", include_in_schema=False)

PolicyId = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]


class HitOut(BaseModel):
    """One policy in a result list."""

    policy_id: str
    version: int
    title: str
    department: str
    category: str | None
    summary: str | None
    valid_from: dt.date
    valid_to: dt.date
    status: str
    max_amount: Decimal | None
    budget: Decimal | None
    score: int
    url: str


class ResultsOut(BaseModel):
    """A page of search results."""

    total: int
    page: int
    pages: int
    hits: list[HitOut]


class ConditionOut(BaseModel):
    """One condition in plain words, with its clause."""

    id: str
    text: str
    clause: str | None


class ItemOut(BaseModel):
    """One item (兑现事项): its extra conditions and how much it pays."""

    id: str
    title: str
    amount: str
    fixed_amount: Decimal | None
    cap: Decimal | None
    conditions: list[ConditionOut]


class PolicyOut(BaseModel):
    """A published policy as the public sees it."""

    id: str
    version: int
    title: str
    department: str
    category: str | None
    tags: list[str]
    summary: str | None
    audience: str | None
    valid_from: dt.date
    valid_to: dt.date
    status: str
    regions: str
    industries: str
    sizes: str
    budget: Decimal | None
    max_amount: Decimal | None
    allocation: str | None
    payment: str
    source_document: str
    source_url: str | None
    conditions: list[ConditionOut]
    items: list[ItemOut]


def _sheet(store: PolicyStore, policy_id: str, today: dt.date) -> supermarket.PolicySheet:
    record = store.latest_published(policy_id)
    if record is None:
        raise NotFoundError(f"没有已发布的政策 {policy_id}")
    return supermarket.describe(store.parsed(record), today)


# Published versions never change: how each is delivered is worked out once per (id, version).
_DELIVERY: dict[tuple[str, int], str] = {}


def _deliveries(store: PolicyStore, hits: Sequence[supermarket.Hit]) -> dict[str, str]:
    """Policy id → 免申即享, 快申快享, 权益 or 资质, for the hits of a result page."""
    for h in hits:
        key = (h.policy_id, h.version)
        if key not in _DELIVERY:
            _DELIVERY[key] = supermarket.delivery(
                store.parsed(store.get(h.policy_id, h.version, "published"))
            )
    return {h.policy_id: _DELIVERY[(h.policy_id, h.version)] for h in hits}


def _hit_out(hit: supermarket.Hit) -> HitOut:
    return HitOut(
        **{k: getattr(hit, k) for k in HitOut.model_fields if k != "url"}, url=f"/policies/{hit.policy_id}"
    )


@router.get("", response_model=ResultsOut, summary="政策超市：搜索已发布的政策（公开，无需登录）")
def search_api(
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=supermarket.MAX_QUERY, description="搜索词，如 稳岗")] = "",
    category: Category | None = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[
        str | None, Query(pattern=r"^[0-9]{2}([0-9]{2}){0,2}$", description="行政区划代码前缀")
    ] = None,
    industry: Annotated[str | None, Query(pattern=r"^[A-T]$", description="行业门类")] = None,
    size: Literal["large", "medium", "small", "micro"] | None = None,
    open_only: Annotated[bool, Query(alias="open", description="只看仍在有效期内的政策")] = False,
    sort: Literal["relevance", "amount"] = "relevance",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> ResultsOut:
    wanted = Search(q, category, department, region, industry, size, open_only, sort, page)
    results = supermarket.search(session, wanted, settings.default_as_of())
    return ResultsOut(
        total=results.total, page=page, pages=results.pages, hits=[_hit_out(h) for h in results.hits]
    )


@router.get("/{policy_id}", response_model=PolicyOut, summary="政策超市：一项已发布政策的详情（公开）")
def policy_api(policy_id: PolicyId, store: StoreDep, settings: SettingsDep) -> PolicyOut:
    sheet = _sheet(store, policy_id, settings.default_as_of())
    p = sheet.policy

    def conditions(items: Sequence[Condition]) -> list[ConditionOut]:
        return [ConditionOut(id=c.id, text=c.text, clause=c.clause) for c in items]

    return PolicyOut(
        id=p.id,
        version=p.version,
        title=p.title,
        department=p.department,
        category=p.category,
        tags=list(p.tags),
        summary=p.summary,
        audience=p.audience,
        valid_from=p.valid_from,
        valid_to=p.valid_to,
        status=sheet.status,
        regions=sheet.regions,
        industries=sheet.industries,
        sizes=sheet.sizes,
        budget=p.budget,
        max_amount=sheet.max_amount,
        allocation=sheet.allocation,
        payment=sheet.payment,
        source_document=p.source.document,
        source_url=p.source.url,
        conditions=conditions(p.conditions),
        items=[
            ItemOut(
                id=i.item.id,
                title=i.item.title,
                amount=i.amount_words,
                fixed_amount=i.fixed,
                cap=i.cap,
                conditions=conditions(i.item.conditions),
            )
            for i in sheet.items
        ],
    )


# Pages


def _url(search: Search, **changes: object) -> str:
    """The list page's address for `search` with `changes`, leaving out what is not set."""
    values = {**vars(search), **changes}
    params = {
        "q": values["q"],
        "category": values["category"],
        "department": values["department"],
        "region": values["region"],
        "industry": values["industry"],
        "size": values["size"],
        "open": "1" if values["open_only"] else None,
        "sort": None if values["sort"] == "relevance" else values["sort"],
        "page": None if values["page"] == 1 else values["page"],
    }
    query = urlencode({k: v for k, v in params.items() if v})
    return "/policies" + (f"?{query}" if query else "")


@pages.get("")
def market_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    q: Annotated[str, Query(max_length=supermarket.MAX_QUERY)] = "",
    category: Annotated[str, Query(max_length=16)] = "",
    department: Annotated[str, Query(max_length=200)] = "",
    region: Annotated[str, Query(max_length=6)] = "",
    industry: Annotated[str, Query(max_length=1)] = "",
    size: Annotated[str, Query(max_length=8)] = "",
    open_only: Annotated[bool, Query(alias="open")] = False,
    sort: Annotated[str, Query(max_length=16)] = "relevance",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    wanted = Search(q, category, department, region, industry, size, open_only, sort, page).checked()
    results = supermarket.search(session, wanted, settings.default_as_of())
    s = results.search
    return render(
        request,
        "market_list.html",
        {
            "s": s,
            "results": results,
            "ways": _deliveries(store, results.hits),
            "choices": supermarket.choices(session),
            "filtered": any((s.category, s.department, s.region, s.industry, s.size, s.open_only)),
            "category_url": {c: _url(s, category=c, page=1) for c in (None, *CATEGORIES)},
            "prev_url": _url(s, page=s.page - 1) if s.page > 1 else None,
            "next_url": _url(s, page=s.page + 1) if s.page < results.pages else None,
        },
    )


@pages.get("/{policy_id}")
def policy_page(request: Request, policy_id: PolicyId, store: StoreDep, settings: SettingsDep) -> Response:
    sheet = _sheet(store, policy_id, settings.default_as_of())
    return render(request, "market_policy.html", {"sheet": sheet, "p": sheet.policy})
