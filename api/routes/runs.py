"""Match runs: start one on a snapshot (a durable job that a worker runs), its status and summary per item, and its
candidate, near-miss and missing-data lists (filtered; CSV or Excel). Users of one department see the
rows of their department's policies only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from api import runlists
from api.deps import (
    JobDep,
    JobsDep,
    RunReader,
    RunStarter,
    SessionDep,
    SettingsDep,
    StoreDep,
    may,
    scoped_policy_ids,
    user_scope,
)
from api.matchjobs import MatchJob, imported_within, snapshot_dirs
from api.routes import redirect, render
from api.routes.jobs import staff_names
from api.runlists import Filters, ListName
from matcher.runfolder import Manifest
from payouts.errors import NotFoundError
from payouts.scope import Scope
from rules import formats
from rules.catalog import CATALOG

router = APIRouter(prefix="/api", tags=["runs"])
pages = APIRouter(prefix="/console/runs", include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class SnapshotOut(BaseModel):
    """A registry snapshot a run can use."""

    name: str


class RunStart(BaseModel):
    """Which snapshot to match, and on which date policies must be in force (default: the configured one)."""

    snapshot: str = Field(min_length=1, max_length=200)
    as_of: dt.date | None = None


class ItemSummary(BaseModel):
    """One policy item's result: eligible, candidates after allocation, near misses, missing data, money."""

    policy_id: str
    item_id: str
    eligible: int | None  # None: counted for a region in a run folder that keeps no eligible rows
    candidates: int
    near_misses: int
    missing_data: int
    amount: str
    amount_before_allocation: str


class RunOut(BaseModel):
    """A match run: its status row and, once done, the summary per item the user may see."""

    id: str
    state: Literal["queued", "running", "done", "failed"]
    state_label: str
    snapshot: str
    as_of: str
    started_by: str
    started_at: str
    finished_at: str | None
    policies: list[str]
    error: str | None
    run_id: str | None
    imported: dict[str, Any] | None
    import_error: str | None
    attempts: int = 0
    snapshot_fingerprint: str | None = None
    rules_fingerprint: str | None = None
    over_budget: list[str] = []
    items: list[ItemSummary] = []


def run_out(job: MatchJob, manifest: Manifest | None, scope: set[str] | None) -> RunOut:
    out = RunOut(
        **{k: getattr(job, k) for k in RunOut.model_fields if hasattr(job, k) and k != "state_label"},
        state_label=job.state_label,
    )
    if manifest is not None:
        out.snapshot_fingerprint = manifest.snapshot.fingerprint
        out.rules_fingerprint = manifest.rules.fingerprint
        out.over_budget = list(manifest.over_budget)
        out.items = [
            ItemSummary(**row) for row in manifest.items if scope is None or row["policy_id"] in scope
        ]
    return out


def scoped_run(job: MatchJob, user: Any, jobs: Any, session: Session, store: Any) -> RunOut:
    """The run as the user may see it (`payouts/scope.py`): the summary of their policies' items and, for a
    region-scoped user, counted again over their region's enterprises only; the offers it imported, of
    their scope only (a user who does not see everything never sees the run-wide counts)."""
    manifest = jobs.manifest(job)
    mine, policies = user_scope(user), scoped_policy_ids(session, store, user)
    out = run_out(job, manifest, policies)
    if manifest is not None and mine.region is not None:
        f = Filters(sorted(policies) if policies is not None else None, region=mine.region)
        out.items = [ItemSummary(**row) for row in runlists.summary(jobs.run_dir(job), manifest.items, f)]
    out.imported = imported_of(session, mine, [job])[job.id]
    return out


def imported_of(session: Session, mine: Scope, listed: list[MatchJob]) -> dict[str, dict[str, Any] | None]:
    """Per job: what its run imported, as the user may see it (`api.matchjobs.imported_within`)."""
    seen = imported_within(session, mine, [(j.run_id, j.imported) for j in listed])
    return {j.id: got for j, got in zip(listed, seen, strict=True)}


@router.get("/snapshots", response_model=list[SnapshotOut], summary="可用的登记数据快照")
def snapshots(user: RunReader, settings: SettingsDep) -> list[SnapshotOut]:
    return [SnapshotOut(name=n) for n in snapshot_dirs(settings.snapshots_root)]


@router.get("/runs", response_model=list[RunOut], summary="匹配运行列表（新的在前）")
def list_runs(user: RunReader, jobs: JobsDep, session: SessionDep) -> list[RunOut]:
    listed = jobs.list()
    imported = imported_of(session, user_scope(user), listed)
    return [run_out(j, None, None).model_copy(update={"imported": imported[j.id]}) for j in listed]


def start_job(
    request: Request, session: Session, background: BackgroundTasks, body: RunStart, username: str
) -> MatchJob:
    """Queue a match job (committed with the request); the service's own worker, if it runs one, is
    woken once the response is out (the job is committed by then)."""
    settings = request.app.state.settings
    found = snapshot_dirs(settings.snapshots_root)
    if body.snapshot not in found:
        raise NotFoundError(f"没有快照 {body.snapshot}")
    jobs = request.app.state.jobs
    job = jobs.start(
        session,
        body.snapshot,
        found[body.snapshot],
        body.as_of or settings.default_as_of(),
        username,
        request.app.state.store,
    )
    if request.app.state.worker is not None:
        background.add_task(request.app.state.worker.wake)
    return job


@router.post(
    "/runs", response_model=RunOut, status_code=202, summary="开始一次匹配运行（排队，由后台任务进程执行）"
)
def start_run(
    body: RunStart, request: Request, background: BackgroundTasks, user: RunStarter, session: SessionDep
) -> RunOut:
    return run_out(start_job(request, session, background, body, user.username), None, None)


@router.get("/runs/{job_id}", response_model=RunOut, summary="匹配运行的状态和按事项汇总")
def get_run(job: JobDep, user: RunReader, jobs: JobsDep, session: SessionDep, store: StoreDep) -> RunOut:
    return scoped_run(job, user, jobs, session, store)


def _filters(session: SessionDep, store: StoreDep, user: Any, **narrow: str | None) -> Filters:
    scope = scoped_policy_ids(session, store, user)
    region = user_scope(user).region
    return Filters(sorted(scope) if scope is not None else None, region=region, **narrow)


def _done(jobs: JobsDep, job: MatchJob) -> None:
    if jobs.manifest(job) is None:
        raise NotFoundError(f"匹配运行 {job.id} 尚未完成，没有名单")


@router.get(
    "/runs/{job_id}/lists/{name}",
    summary="下载名单：候选、差一点、数据缺失（CSV 或 Excel）",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
def download_list(
    job: JobDep,
    name: ListName,
    user: RunReader,
    jobs: JobsDep,
    session: SessionDep,
    store: StoreDep,
    format: Literal["csv", "xlsx"] = "csv",
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    item_id: Annotated[str | None, Query(max_length=64)] = None,
    condition_id: Annotated[str | None, Query(max_length=64)] = None,
    field: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    _done(jobs, job)
    f = _filters(
        session, store, user, policy_id=policy_id, item_id=item_id, condition_id=condition_id, field=field
    )
    filename = f"{job.id}-{name}.{format}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "xlsx":
        return Response(runlists.workbook(jobs.run_dir(job), name, f), media_type=XLSX, headers=disposition)
    return StreamingResponse(
        runlists.csv_chunks(jobs.run_dir(job), name, f),
        media_type="text/csv; charset=utf-8",
        headers=disposition,
    )


# Console


@pages.get("")
def runs_page(
    request: Request, user: RunReader, jobs: JobsDep, settings: SettingsDep, session: SessionDep
) -> Response:
    listed = jobs.list()
    return render(
        request,
        "runs.html",
        {
            "jobs": listed,
            "imported": imported_of(session, user_scope(user), listed),
            "names": staff_names(session, {j.started_by for j in listed}),
            "snapshots": list(snapshot_dirs(settings.snapshots_root)),
            "as_of": settings.default_as_of(),
            "can_start": may(user, "run_start"),
        },
    )


@pages.post("")
def start_page(
    request: Request,
    background: BackgroundTasks,
    user: RunStarter,
    session: SessionDep,
    snapshot: Annotated[str, Form(max_length=200)],
    as_of: Annotated[dt.date | None, Form()] = None,
) -> Response:
    job = start_job(request, session, background, RunStart(snapshot=snapshot, as_of=as_of), user.username)
    return redirect(f"/console/runs/{job.id}", "匹配已开始，完成后本页显示结果（可刷新）")


@pages.get("/{job_id}")
def run_page(
    request: Request,
    job: JobDep,
    user: RunReader,
    jobs: JobsDep,
    session: SessionDep,
    store: StoreDep,
    name: ListName = "near_misses",
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    item_id: Annotated[str | None, Query(max_length=64)] = None,
    condition_id: Annotated[str | None, Query(max_length=64)] = None,
    field: Annotated[str | None, Query(max_length=64)] = None,
    item: Annotated[str | None, Query(max_length=130)] = None,
) -> Response:
    manifest = jobs.manifest(job)
    run = scoped_run(job, user, jobs, session, store)
    if item and "/" in item:  # an item chosen from the list: policy/item
        policy_id, item_id = item.split("/", 1)
    narrow = {
        "policy_id": policy_id or None,
        "item_id": item_id or None,
        "condition_id": condition_id or None,
        "field": field or None,
    }
    total, rows = (0, [])
    if manifest is not None:
        total, rows = runlists.page(jobs.run_dir(job), name, _filters(session, store, user, **narrow))
    query = urlencode({k: v for k, v in narrow.items() if v})
    words = RunWords.of(manifest, {i.policy_id for i in run.items})
    return render(
        request,
        "run.html",
        {
            "job": job,
            "run": run,
            "name": name,
            "labels": runlists.LIST_LABELS,
            "headers": runlists.headers(name),
            "rows": [words.row(name, r) for r in rows],
            "total": total,
            "narrow": narrow,
            "chosen_item": f"{narrow['policy_id']}/{narrow['item_id']}" if narrow["item_id"] else "",
            "query": query,
            "words": words,
            "started_by": staff_names(session, {job.started_by}).get(job.started_by, job.started_by),
            "region_scoped": user_scope(user).region is not None,
        },
    )


@dataclass
class RunWords:
    """A run's ids in words, from its manifest: policy and item titles, condition texts, field labels;
    the lists the run page's filters choose from."""

    policies: dict[str, str]
    items: dict[tuple[str, str], str]
    conditions: dict[tuple[str, str], str]  # (policy, condition id) → text; item conditions too
    item_conditions: list[tuple[str, list[tuple[str, str]]]]  # group label → (condition id, text)

    @classmethod
    def of(cls, manifest: Manifest | None, shown: set[str]) -> RunWords:
        words = cls({}, {}, {}, [])
        for p in manifest.policies if manifest else ():
            if p.id not in shown:
                continue
            words.policies[p.id] = p.title
            shared = [(c.id, c.text or c.id) for c in p.conditions]
            for c in p.conditions:
                words.conditions[(p.id, c.id)] = c.text or c.id
            if shared:
                words.item_conditions.append((f"{p.title}（各事项共同条件）", shared))
            for i in p.items:
                words.items[(p.id, i.id)] = i.title or i.id
                own = [(c.id, c.text or c.id) for c in i.conditions]
                for c in i.conditions:
                    words.conditions.setdefault((p.id, c.id), c.text or c.id)
                if own:
                    words.item_conditions.append((f"{p.title} · {i.title or i.id}", own))
        return words

    def item_choices(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Items grouped by policy title: (policy title, [(policy/item, item title)])."""
        out: dict[str, list[tuple[str, str]]] = {}
        for (pid, iid), title in self.items.items():
            out.setdefault(self.policies[pid], []).append((f"{pid}/{iid}", title))
        return list(out.items())

    def field_choices(self) -> list[tuple[str, str]]:
        return sorted(((name, f.label) for name, f in CATALOG.items()), key=lambda kv: kv[1])

    def row(self, name: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A list's row with its policy, item, condition and fields in words (the downloads keep the ids)."""
        values = list(row)
        pid, iid = values[0], values[2 if name == "candidates" else 1]
        values[0] = self.policies.get(pid, pid)
        values[2 if name == "candidates" else 1] = self.items.get((pid, iid), iid)
        if name == "near_misses":
            values[3] = self.conditions.get((pid, values[3]), values[3])
            values[4] = read_values(values[4])
        if name == "missing_data" and values[3]:
            values[3] = "、".join(label(f) for f in str(values[3]).split("、"))
        return tuple(values)


def read_values(text: str | None) -> str | None:
    """A near miss's `field=value; …` as staff read it: 高新技术企业 否；裁员率 6.2%."""
    if not text:
        return text
    shown = []
    for part in str(text).split("; "):
        field, sep, value = part.partition("=")
        shown.append(f"{label(field)} {formats.field_value(field, value)}" if sep else part)
    return "；".join(shown)


def label(field: str) -> str:
    """A catalog field's Chinese label (an unknown name as it is)."""
    known = CATALOG.get(field)
    return known.label if known else field
