"""The typed dependencies every route uses, and the one place where access is decided.

- `SessionDep`: one database transaction per request, committed when the route returns; read-only for
  GET and HEAD (safe methods change nothing), so that on SQLite they never wait for the write lock,
  except on the GET routes marked `@writes` (a sign-in callback, an audited download).
- `CurrentUser`: the staff user of a live server-side session (`payouts/signin.py`), presented as the
  bearer token or the session cookie; a state-changing request made with the cookie must carry the CSRF
  token (form field `csrf` or header `X-CSRF-Token`). The session's activity is recorded after the
  response, in a short write of its own, at most once a minute, so that reads stay read-only.
- `client_address`: the one answer to "who is the client", for rate limits, logs and the audit:
  `X-Forwarded-For` is believed only from the proxies of `ZHIDA_TRUSTED_PROXIES`.
- `Allow(action)`: the user, if their role may do `action` (table `ACCESS`); otherwise 403.
- Object loaders (`OfferDep`, `BatchDep`, `JobDep`, `DraftDep`, `PublishedDep`) return 404 for anything
  that does not exist *or* lies outside the user's scope (`payouts/scope.py`: their department's and its
  superiors' policies, their region's enterprises), so no route can leak another department's or
  region's objects (a user without a department sees everything; a policy user always has one).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import BackgroundTasks, Depends, Path, Request
from sqlalchemy import Engine, select
from sqlmodel import Session

from api.auth import Tokens
from api.matchjobs import MatchJob, MatchJobs
from api.policystore import PolicyStore, StoredPolicy
from api.settings import Settings
from payouts import scope, signin
from payouts.db import transaction
from payouts.errors import NotFoundError, RoleError
from payouts.models import Batch, Objection, Offer, PolicyVersion, PublicNotice, Role, StaffUser
from payouts.scope import Scope
from payouts.users import PERMISSIONS, ROLE_LABELS
from portal.models import Application, SuppliedValue
from portal.supplied import owns

SESSION_COOKIE = "zhida_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
_GET_WRITERS: set[Callable[..., Any]] = set()  # the GET routes whose transaction may write
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
R = Role
# Everyone but the system and security administrators, who manage users and security, not payouts.
ALL_STAFF = frozenset(Role) - {R.SYSTEM_ADMIN, R.SECURITY_ADMIN}

# Who may do what. The payouts domain checks its own permissions again (payouts.users.PERMISSIONS).
ACCESS: dict[str, frozenset[Role]] = {
    "policy_read": frozenset({R.POLICY, R.REVIEWER, R.AUDITOR}),
    "policy_write": frozenset({R.POLICY}),
    "run_read": frozenset({R.POLICY, R.REVIEWER, R.AUDITOR}),
    "run_start": frozenset({R.REVIEWER}),
    "offer_read": ALL_STAFF,
    "review": PERMISSIONS["review"],
    "sms_send": frozenset({R.REVIEWER}),
    "batch_read": frozenset({R.FINANCE_MAKER, R.FINANCE_CHECKER, R.AUDITOR}),
    "batch_make": PERMISSIONS["batch_make"],
    "batch_check": PERMISSIONS["batch_check"],
    "bank_files": PERMISSIONS["bank_files"],
    "audit_verify": PERMISSIONS["audit"],
    "report_read": frozenset({R.POLICY, R.REVIEWER, R.FINANCE_MAKER, R.FINANCE_CHECKER, R.AUDITOR}),
    # Who holds which role: the system administrator (who manages users), the security administrator (who
    # reviews role assignments) and the auditor.
    "users_read": PERMISSIONS["manage_users"] | PERMISSIONS["review_roles"] | PERMISSIONS["audit"],
    # Payee changes: proposed by one person, approved or rejected by another (payouts.payees).
    "account_change": PERMISSIONS["correct_account"],
    "account_change_read": PERMISSIONS["correct_account"]
    | PERMISSIONS["approve_account_change"]
    | {R.AUDITOR},
    "account_change_decide": PERMISSIONS["approve_account_change"],
    # Supplied data (verified by the department holding the field) and public notice (公示).
    "data_verify": PERMISSIONS["data_verify"],
    "notice_read": frozenset({R.POLICY, R.REVIEWER, R.FINANCE_MAKER, R.FINANCE_CHECKER, R.AUDITOR}),
    "notice_open": PERMISSIONS["notice_open"],
    "objection_resolve": PERMISSIONS["objection_resolve"],
    # Applications (快申快享): the reviewing departments (portal.applications).
    "application_review": PERMISSIONS["application_review"],
    "act_for": PERMISSIONS["act_for"],
    # Background jobs (任务): who starts them (the reviewer), who audits, and the system administrator, who
    # keeps the service running.
    "jobs_read": frozenset({R.REVIEWER, R.AUDITOR, R.SYSTEM_ADMIN}),
    # The finance structure (payouts.finance): read by finance staff and the auditor, kept by the finance
    # checker; never the policy's author.
    "finance_read": frozenset({R.FINANCE_MAKER, R.FINANCE_CHECKER, R.AUDITOR}),
    "finance_config": PERMISSIONS["finance_config"],
}


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in, as the console's pages show it."""

    username: str
    display_name: str
    role: str
    department: str | None


class Unauthenticated(Exception):
    """No valid session: the API answers 401, the console sends the browser to the login page."""


class CsrfRefused(Exception):
    """A state-changing request with the session cookie but without its CSRF token."""


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def writes(endpoint: Endpoint) -> Endpoint:
    """Mark a GET route that writes (under its `@router.get`): its transaction is not read-only."""
    _GET_WRITERS.add(endpoint)
    return endpoint


def get_session(request: Request) -> Iterator[Session]:
    read_only = request.method in READ_METHODS and request.scope.get("endpoint") not in _GET_WRITERS
    with transaction(request.app.state.engine, read_only=read_only) as session:
        yield session


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request) -> str:
    """The client's address: the peer itself, unless the peer is a trusted proxy; then the nearest address
    in `X-Forwarded-For` (read from the right) that is not a trusted proxy. Anyone else's header is ignored,
    so that nobody can pick the address their rate limits and audit events are counted under."""
    peer = request.client.host if request.client else ""
    trusted: tuple[Network, ...] = request.app.state.trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer or "-"
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a hop that is no address: stop at the last one a trusted proxy vouched for
        client = hop
        if not _within(hop, trusted):
            break
    return client


def get_tokens(request: Request) -> Tokens:
    return request.app.state.tokens


def get_store(request: Request) -> PolicyStore:
    return request.app.state.store


def get_jobs(request: Request) -> MatchJobs:
    return request.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[
    Session, Depends(get_session, scope="function")
]  # committed before the response goes out
TokensDep = Annotated[Tokens, Depends(get_tokens)]
StoreDep = Annotated[PolicyStore, Depends(get_store)]
JobsDep = Annotated[MatchJobs, Depends(get_jobs)]


def presented_token(request: Request) -> tuple[str | None, bool]:
    """The session token of a request and whether it came in the cookie (rather than as a bearer token)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def presented(request: Request, tokens: TokensDep) -> tuple[str | None, bool]:
    """The request's session token and whether it came in the cookie; refuses a state-changing cookie
    request without the CSRF token. (Async, to read the form; it touches no database.)"""
    token, by_cookie = presented_token(request)
    if token and by_cookie and request.method in UNSAFE_METHODS:
        given = request.headers.get("x-csrf-token")
        if given is None and "form" in request.headers.get("content-type", ""):
            value = (await request.form()).get("csrf")
            given = value if isinstance(value, str) else None
        if not tokens.csrf_ok(given, token):
            raise CsrfRefused()
    return token, by_cookie


def _touch(engine: Engine, session_id: int, now: dt.datetime) -> None:
    with transaction(engine) as s:
        signin.touch(s, session_id, now)


def current_user(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    given: Annotated[tuple[str | None, bool], Depends(presented)],
    background: BackgroundTasks,
) -> StaffUser:
    """The active staff user the request is authenticated as (sync: database work runs off the event loop)."""
    token, by_cookie = given
    state = request.app.state
    now = state.clock()
    live = signin.live_session(session, token, now, state.session_limits) if token else None
    if live is None:
        raise Unauthenticated()
    if live.touch_due:  # after the response: a GET's transaction is read-only, and most requests skip this
        background.add_task(_touch, state.engine, live.id, now)
    user = live.user
    request.state.user = user.username
    # Plain values: pages (and error pages, after a rollback has expired the row) show who is signed in.
    request.state.user_record = SignedIn(user.username, user.display_name, user.role, user.department)
    request.state.csrf = tokens.csrf(token or "") if by_cookie else ""
    return user


CurrentUser = Annotated[StaffUser, Depends(current_user)]


def may(user: StaffUser, action: str) -> bool:
    return Role(user.role) in ACCESS[action]


def check(user: StaffUser, action: str) -> StaffUser:
    """`user`, if their role may do `action`; RoleError (403) otherwise."""
    if not may(user, action):
        allowed = "、".join(ROLE_LABELS[r] for r in sorted(ACCESS[action]))
        raise RoleError(f"{ROLE_LABELS[Role(user.role)]}无权进行此操作，需要：{allowed}")
    return user


class Allow:
    """A dependency: the current user, if their role may do `action`."""

    def __init__(self, action: str) -> None:
        self.action = action

    def __call__(self, user: CurrentUser) -> StaffUser:
        return check(user, self.action)


PolicyReader = Annotated[StaffUser, Depends(Allow("policy_read"))]
PolicyWriter = Annotated[StaffUser, Depends(Allow("policy_write"))]
RunReader = Annotated[StaffUser, Depends(Allow("run_read"))]
RunStarter = Annotated[StaffUser, Depends(Allow("run_start"))]
OfferReader = Annotated[StaffUser, Depends(Allow("offer_read"))]
Reviewer = Annotated[StaffUser, Depends(Allow("review"))]
SmsSender = Annotated[StaffUser, Depends(Allow("sms_send"))]
BatchReader = Annotated[StaffUser, Depends(Allow("batch_read"))]
Maker = Annotated[StaffUser, Depends(Allow("batch_make"))]
Checker = Annotated[StaffUser, Depends(Allow("batch_check"))]
BankFiles = Annotated[StaffUser, Depends(Allow("bank_files"))]
Verifier = Annotated[StaffUser, Depends(Allow("audit_verify"))]
ReportReader = Annotated[StaffUser, Depends(Allow("report_read"))]
UsersReader = Annotated[StaffUser, Depends(Allow("users_read"))]
JobsReader = Annotated[StaffUser, Depends(Allow("jobs_read"))]
AccountChanger = Annotated[StaffUser, Depends(Allow("account_change"))]
AccountChangeReader = Annotated[StaffUser, Depends(Allow("account_change_read"))]
AccountChangeDecider = Annotated[StaffUser, Depends(Allow("account_change_decide"))]
FinanceReader = Annotated[StaffUser, Depends(Allow("finance_read"))]
FinanceKeeper = Annotated[StaffUser, Depends(Allow("finance_config"))]


def department(user: StaffUser) -> str | None:
    """The one department the user works for, or None for all; a policy user never sees all."""
    if user.department:
        return user.department
    return "" if user.role == Role.POLICY.value else None


def user_scope(user: StaffUser) -> Scope:
    """What the user sees and acts on: their department's and its superiors' policies, their region's
    enterprises (`payouts/scope.py`, the one filter every list, count, page, export and action uses)."""
    return scope.of_user(user)


def in_scope(user: StaffUser, dept: str | None) -> bool:
    """Whether a policy of department `dept` is the user's (their own department or a superior's)."""
    return user_scope(user).department(dept)


def scoped_policy_ids(session: Session, store: PolicyStore, user: StaffUser) -> set[str] | None:
    """The policies of the user's departments (imported or stored), or None when the user sees all."""
    mine = user_scope(user)
    imported = scope.policy_ids(session, mine)
    if imported is None:
        return None
    return imported | {pid for pid, dept in store.departments().items() if mine.department(dept)}


def policy_department(session: Session, policy_id: str) -> str | None:
    """The department of a policy as its latest imported version names it."""
    return session.scalar(
        select(PolicyVersion.department)
        .where(PolicyVersion.policy_id == policy_id)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
    )


def load_offer(
    public_id: Annotated[str, Path(max_length=32)], user: OfferReader, session: SessionDep
) -> Offer:
    """An offer the user sees (their policies, their region); 404 for every other, as for none."""
    offer = session.scalar(select(Offer).where(Offer.public_id == public_id))
    if offer is None or not user_scope(user).sees_offer(session, offer):
        raise NotFoundError(f"没有要约 {public_id}")
    return offer


def scoped_offers(session: Session, user: StaffUser, public_ids: Iterable[str]) -> list[str]:
    """The ids, if every one names an offer the user sees; NotFoundError naming the others."""
    return user_scope(user).check_offers(session, public_ids)


def load_batch(
    reference: Annotated[str, Path(max_length=35)], user: BatchReader, session: SessionDep
) -> Batch:
    batch = session.scalar(select(Batch).where(Batch.reference == reference))
    if batch is None or not user_scope(user).sees_batch(session, batch):
        raise NotFoundError(f"没有拨付批次 {reference}")
    return batch


def load_job(job_id: Annotated[str, Path(max_length=16)], user: RunReader, jobs: JobsDep) -> MatchJob:
    return jobs.get(job_id)  # a run spans departments: what a user sees of it is filtered by policy


def _stored(store: PolicyStore, user: StaffUser, policy_id: str, version: int, status: str) -> StoredPolicy:
    record = store.get(policy_id, version, "draft" if status == "draft" else "published")
    if not in_scope(user, record.department):
        raise NotFoundError(f"没有政策 {policy_id} 第 {version} 版")
    return record


def load_draft(
    policy_id: Annotated[str, Path(max_length=64)],
    version: Annotated[int, Path(ge=1, le=999_999_999)],
    user: PolicyReader,
    store: StoreDep,
) -> StoredPolicy:
    return _stored(store, user, policy_id, version, "draft")


def load_published(
    policy_id: Annotated[str, Path(max_length=64)],
    version: Annotated[int, Path(ge=1, le=999_999_999)],
    user: PolicyReader,
    store: StoreDep,
) -> StoredPolicy:
    return _stored(store, user, policy_id, version, "published")


OfferDep = Annotated[Offer, Depends(load_offer)]
BatchDep = Annotated[Batch, Depends(load_batch)]
JobDep = Annotated[MatchJob, Depends(load_job)]
DraftDep = Annotated[StoredPolicy, Depends(load_draft)]
PublishedDep = Annotated[StoredPolicy, Depends(load_published)]


# --- Enterprises (企业端): their own session, separate from staff; every object checked as theirs. ---


@dataclass(frozen=True)
class SignedInEnterprise:
    """The enterprise a request is signed in as (its USCC), and how it signed in."""

    uscc: str
    via: str


class EnterpriseUnauthenticated(Exception):
    """No valid enterprise session: the browser goes to the enterprise sign-in page."""


def current_enterprise(request: Request, session: SessionDep) -> SignedInEnterprise:
    """The enterprise of the session cookie. Its forms carry `request.state.enterprise_csrf` (the CSRF token
    bound to the cookie), which a state-changing route checks: `tokens.csrf_ok(csrf, "enterprise", cookie)`."""
    from api.enterprise_auth import ENTERPRISE_COOKIE
    from portal.identity import session_alive

    token = request.cookies.get(ENTERPRISE_COOKIE)
    claim = request.app.state.enterprise_tokens.read_session(token)
    if claim is None or not session_alive(session, claim.uscc, claim.at):
        raise EnterpriseUnauthenticated()
    request.state.user = f"enterprise:{claim.uscc}"
    request.state.enterprise_csrf = request.app.state.tokens.csrf("enterprise", token or "")
    return SignedInEnterprise(claim.uscc, claim.via)


CurrentEnterprise = Annotated[SignedInEnterprise, Depends(current_enterprise)]


def load_enterprise_offer(
    public_id: Annotated[str, Path(max_length=32)], enterprise: CurrentEnterprise, session: SessionDep
) -> Offer:
    """The signed-in enterprise's own offer; 404, the same as for no offer, for anyone else's."""
    offer = session.scalar(select(Offer).where(Offer.public_id == public_id))
    if offer is None or offer.uscc != enterprise.uscc:
        raise NotFoundError(f"没有要约 {public_id}")
    return offer


EnterpriseOfferDep = Annotated[Offer, Depends(load_enterprise_offer)]


# --- Supplied data and public notice (portal.supplied, payouts.notice) ---

DataVerifier = Annotated[StaffUser, Depends(Allow("data_verify"))]
NoticeReader = Annotated[StaffUser, Depends(Allow("notice_read"))]
NoticeOpener = Annotated[StaffUser, Depends(Allow("notice_open"))]
ObjectionResolver = Annotated[StaffUser, Depends(Allow("objection_resolve"))]


def load_supplied(
    public_id: Annotated[str, Path(max_length=32)], user: DataVerifier, session: SessionDep
) -> SuppliedValue:
    """A submission of a field the user's department holds; 404 for every other (and for no department)."""
    row = session.scalar(select(SuppliedValue).where(SuppliedValue.public_id == public_id))
    if row is None or not owns(user.department, row.department):
        raise NotFoundError(f"没有补充材料 {public_id}")
    return row


def load_enterprise_supplied(
    public_id: Annotated[str, Path(max_length=32)], enterprise: CurrentEnterprise, session: SessionDep
) -> SuppliedValue:
    """The signed-in enterprise's own submission; 404, the same as for none, for anyone else's."""
    row = session.scalar(select(SuppliedValue).where(SuppliedValue.public_id == public_id))
    if row is None or row.uscc != enterprise.uscc:
        raise NotFoundError(f"没有补充材料 {public_id}")
    return row


def load_notice(
    public_id: Annotated[str, Path(max_length=32)], user: NoticeReader, session: SessionDep
) -> PublicNotice:
    """A public notice of the user's department's policies (staff view, with objections)."""
    row = session.scalar(select(PublicNotice).where(PublicNotice.public_id == public_id))
    batch = session.get(Batch, row.batch_id) if row is not None else None
    if row is None or batch is None or not user_scope(user).sees_batch(session, batch):
        raise NotFoundError(f"没有公示 {public_id}")
    return row


def load_objection(
    public_id: Annotated[str, Path(max_length=32)], user: ObjectionResolver, session: SessionDep
) -> Objection:
    """An objection to a notice of the user's department's policies."""
    row = session.scalar(select(Objection).where(Objection.public_id == public_id))
    notice = session.get(PublicNotice, row.notice_id) if row is not None else None
    batch = session.get(Batch, notice.batch_id) if notice is not None else None
    if row is None or batch is None or not user_scope(user).sees_batch(session, batch):
        raise NotFoundError(f"没有异议 {public_id}")
    return row


def load_enterprise_application(
    public_id: Annotated[str, Path(max_length=32)], enterprise: CurrentEnterprise, session: SessionDep
) -> Application:
    """The signed-in enterprise's own application (快申快享); 404, the same as for none, for anyone else's."""
    from portal.applications import of_enterprise

    return of_enterprise(session, enterprise.uscc, public_id)


EnterpriseApplicationDep = Annotated[Application, Depends(load_enterprise_application)]
ApplicationReviewer = Annotated[StaffUser, Depends(Allow("application_review"))]


def load_application(
    public_id: Annotated[str, Path(max_length=32)], user: ApplicationReviewer, session: SessionDep
) -> Application:
    """An application the user's department reviews; 404 for every other (and for no department)."""
    from portal.applications import for_department

    return for_department(session, user.username, public_id)


ApplicationDep = Annotated[Application, Depends(load_application)]
SuppliedDep = Annotated[SuppliedValue, Depends(load_supplied)]
EnterpriseSuppliedDep = Annotated[SuppliedValue, Depends(load_enterprise_supplied)]
NoticeDep = Annotated[PublicNotice, Depends(load_notice)]
ObjectionDep = Annotated[Objection, Depends(load_objection)]
