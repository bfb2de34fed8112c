"""What a member of staff may see and act on: the one filter every list, count, page, export, bulk action
and command applies to offers and batches (`Scope.offers`, `Scope.batches`), and its checks for one object.

The rule (docs/contracts.md#departments-and-regions):

- **Policies.** A user acts on the policies whose department is their own department *or one of its
  superiors*, matched by name (芙蓉区人社局 → 长沙市人社局 → 湖南省人社厅 → 人力资源社会保障部: the county
  bureau reviews its own enterprises of a policy of the province's 厅 or of the ministry; a document issued
  jointly names its departments separated by spaces, and any of them matches), and on those that name
  one of these among their `reviewers` (joint review, 会签). Deciding an offer (release, hold, drop) is the lead's: the first of the
  policy's reviewers, else its department.
- **Enterprises.** A user of a placed province, city or county department sees only the offers of
  enterprises whose region code (from the profile, `offer.region_code`) starts with the department's
  prefix (2, 4 or 6 digits), and the batches made for that region or a narrower one. An offer whose region
  is not known is seen by nobody region-scoped.
- A user without a department sees everything; a department not yet placed (no level, carried over by
  migration 0018) has no region limit, as before.

Outside the scope an object does not exist: the web answers 404 and commands "not found", exactly as
for an object that does not exist at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, false, select, true
from sqlalchemy.orm import object_session
from sqlmodel import Session

from payouts.departments import line, prefix
from payouts.errors import NotFoundError
from payouts.models import Batch, Offer, PolicyVersion, Role, StaffUser


@dataclass(frozen=True)
class Scope:
    """The departments (by name) whose policies a user acts on, and the region prefix of their enterprises.

    `departments` None: every department; `region` None: every region. `versions` and `decides` are the
    ids of the policy versions the user sees and decides on (None: all), resolved once from the table.
    """

    departments: frozenset[str] | None = None
    region: str | None = None
    versions: frozenset[int] | None = None
    decides: frozenset[int] | None = None

    @property
    def everything(self) -> bool:
        return self.departments is None and self.region is None

    def department(self, name: str | None) -> bool:
        """Whether a policy of department `name` is the user's (own department or a superior)."""
        return self.departments is None or (name is not None and bool(issuers(name) & self.departments))

    def region_code(self, code: str | None) -> bool:
        """Whether an enterprise of region `code` is within the user's region."""
        return self.region is None or (code is not None and code.startswith(self.region))

    def batch_region(self, region: str | None) -> bool:
        """Whether a batch made for `region` (None: every region) is within the user's region."""
        return self.region is None or (region or "").startswith(self.region)

    def offers(self, *, deciding: bool = False) -> ColumnElement[bool]:
        """The offers within the scope, as a condition on the offer table alone (correlated, so a query that
        joins the policy version itself may use it too); `deciding`: only those the user decides on."""
        c = Offer.__table__.c
        where: list[ColumnElement[bool]] = []
        versions = self.decides if deciding else self.versions
        if versions is not None:
            if not versions:
                return false()
            where.append(
                exists()
                .where(
                    PolicyVersion.policy_id == c.policy_id,
                    PolicyVersion.version == c.policy_version,
                    PolicyVersion.id.in_(sorted(versions)),
                )
                .correlate_except(PolicyVersion)
            )
        if self.region is not None:
            where.append(c.region_code.startswith(self.region, autoescape=True))
        return and_(true(), *where)

    def batches(self) -> ColumnElement[bool]:
        """The batches within the scope, as a condition on the batch table."""
        c = Batch.__table__.c
        where: list[ColumnElement[bool]] = []
        if self.versions is not None:
            ids = select(PolicyVersion.policy_id).where(PolicyVersion.id.in_(sorted(self.versions)))
            where.append(c.policy_id.in_(ids))
        if self.region is not None:
            where.append(c.region.startswith(self.region, autoescape=True))
        return and_(true(), *where)

    def sees_offer(self, session: Session, offer: Offer) -> bool:
        return self.region_code(offer.region_code) and (
            self.versions is None or _version_id(session, offer) in self.versions
        )

    def sees_offer_deciding(self, session: Session, offer: Offer) -> bool:
        """Whether the user decides on this offer (their region, and a policy whose review they lead)."""
        return self.region_code(offer.region_code) and (
            self.decides is None or _version_id(session, offer) in self.decides
        )

    def sees_batch(self, session: Session, batch: Batch) -> bool:
        if not self.batch_region(batch.region):
            return False
        if self.versions is None:
            return True
        ids = session.scalars(select(PolicyVersion.id).where(PolicyVersion.policy_id == batch.policy_id))
        return any(i in self.versions for i in ids)

    def check_offers(
        self, session: Session, public_ids: Iterable[str], *, deciding: bool = False
    ) -> list[str]:
        """The ids, if every one names an offer within the scope; NotFoundError naming the others."""
        wanted = sorted(set(public_ids))
        seen = set(
            session.scalars(
                select(Offer.public_id).where(Offer.public_id.in_(wanted), self.offers(deciding=deciding))
            )
        )
        if missing := [p for p in wanted if p not in seen]:
            raise NotFoundError(f"没有要约：{', '.join(missing)}")
        return wanted


EVERYTHING = Scope()


def _version_id(session: Session, offer: Offer) -> int | None:
    return session.scalar(
        select(PolicyVersion.id).where(
            PolicyVersion.policy_id == offer.policy_id, PolicyVersion.version == offer.policy_version
        )
    )


def issuers(department: str) -> set[str]:
    """The departments a policy's `department` names: the text itself and, for a document issued jointly
    (联合发文, "人力资源社会保障部 财政部 国家税务总局"), each name separated by spaces."""
    return {department, *department.split()}


def lead(department: str, reviewers: str | None) -> str:
    """The department that decides on a policy's offers: its first reviewer, else its own department."""
    names = reviewer_list(reviewers)
    return names[0] if names else department


def reviewer_list(reviewers: str | None) -> list[str]:
    """A policy version's reviewers (the JSON the import stored), the lead first; [] when none."""
    return [str(r) for r in json.loads(reviewers)] if reviewers else []


def names_of(session: Session, user: StaffUser) -> frozenset[str] | None:
    """The departments whose policies `user` acts on: their own and its superiors (None: all; a policy user
    without a department has none)."""
    if user.department_id is not None:
        return frozenset(d.name for d in line(session, user.department_id))
    if user.department:
        return frozenset({user.department})
    return frozenset() if user.role == Role.POLICY.value else None


def of(session: Session, user: StaffUser) -> Scope:
    """The scope of `user` (see the module docstring)."""
    names = names_of(session, user)
    region = None
    if user.department_id is not None:
        placed = line(session, user.department_id)[0]
        region = prefix(placed.level, placed.region_code)
    if names is None:
        return Scope(None, region)
    seen: set[int] = set()
    decides: set[int] = set()
    for vid, dept, reviewers in session.execute(
        select(PolicyVersion.id, PolicyVersion.department, PolicyVersion.reviewers)
    ):
        if names & issuers(dept) or names.intersection(reviewer_list(reviewers)):
            seen.add(vid)
        if names & issuers(lead(dept, reviewers)):
            decides.add(vid)
    return Scope(names, region, frozenset(seen), frozenset(decides))


def of_user(user: StaffUser) -> Scope:
    """The scope of a user loaded in a session (the request's): `of` in that session."""
    session = object_session(user)
    if session is None:  # a detached user: their own department's name alone, no region
        return Scope(frozenset({user.department}) if user.department else None)
    return of(session, user)  # type: ignore[arg-type]


def of_username(session: Session, username: str) -> Scope:
    """The scope of the user called `username` (the actor of a domain function); every scope for the
    system's own actors (`system`, the worker), which are not staff users."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    return EVERYTHING if user is None else of(session, user)


def policy_ids(session: Session, scope: Scope) -> set[str] | None:
    """The ids of the policies (imported) within the scope, or None for all."""
    if scope.versions is None:
        return None
    return set(
        session.scalars(select(PolicyVersion.policy_id).where(PolicyVersion.id.in_(sorted(scope.versions))))
    )
