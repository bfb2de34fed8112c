"""The enterprise portal's tables: the policy supermarket's listings and search terms, enterprise
sign-in (logins, per-address counters, one-time codes) and the data enterprises supply with evidence
(and the overrides verified values become).

Created by the migrations in `payouts/migrations/` like every table; the money flow never reads them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from payouts.models import BigKey, allowed
from payouts.sqltypes import Money, UtcDateTime


class PolicyListing(SQLModel, table=True):
    """The latest published version of a policy as the public policy supermarket (政策超市) lists it.

    Scope columns hold comma-wrapped code lists (",43,4301,") so that a filter is a LIKE on one row;
    NULL means "not restricted". See `portal.supermarket`.
    """

    __tablename__ = "policy_listing"

    id: int | None = Field(default=None, primary_key=True)
    policy_id: str = Field(sa_type=String(64), unique=True)
    version: int
    title: str = Field(sa_type=Text)
    department: str = Field(sa_type=Text)
    category: str | None = Field(default=None, sa_type=String(16))
    summary: str | None = Field(default=None, sa_type=Text)
    valid_from: dt.date = Field(sa_type=Date)
    valid_to: dt.date = Field(sa_type=Date)
    max_amount: Decimal | None = Field(default=None, sa_type=Money)  # per enterprise; None: by formula
    budget: Decimal | None = Field(default=None, sa_type=Money)
    regions: str | None = Field(default=None, sa_type=Text)
    regions_excluded: str | None = Field(default=None, sa_type=Text)
    sections: str | None = Field(default=None, sa_type=String(64))
    sizes: str | None = Field(default=None, sa_type=String(64))
    published_at: dt.datetime = Field(sa_type=UtcDateTime)
    indexed_at: dt.datetime = Field(sa_type=UtcDateTime)


class PolicyToken(SQLModel, table=True):
    """One search term of a listed policy and its weight there (a word in the title weighs most)."""

    __tablename__ = "policy_token"
    # Covering index: a search reads only this index, term by term.
    __table_args__ = (Index("ix_policy_token_token", "token", "listing_id", "weight"),)

    listing_id: int = Field(foreign_key="policy_listing.id", primary_key=True)
    # Compared byte by byte on PostgreSQL: terms are looked up, never sorted for people.
    token: str = Field(
        sa_type=String(32).with_variant(String(32, collation="C"), "postgresql"), primary_key=True
    )
    weight: int


class EnterpriseLogin(SQLModel, table=True):
    """An enterprise's sign-in record: wrong one-time codes from every client in a day, the enterprise-wide
    lockout they caused (far above what one client can reach, see `portal.identity`), the last login.

    One row per enterprise, locked while a code is checked, so that parallel guesses count one by one.
    """

    __tablename__ = "enterprise_login"

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    uscc: str = Field(sa_type=String(18), unique=True)
    failures: int = 0  # wrong codes from every client since `failures_since`
    failures_since: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)  # the day's window
    locked_until: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    alerted_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)  # told its codes are guessed
    last_login_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_login_via: str | None = Field(default=None, sa_type=String(16))  # "sms" | "oidc"
    logged_out_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)  # ends older sessions


class LoginClient(SQLModel, table=True):
    """One client address's wrong codes for one enterprise, and the block they earned: a stranger's
    guesses block the stranger's address, not the enterprise."""

    __tablename__ = "login_client"
    __table_args__ = (UniqueConstraint("uscc", "client"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    uscc: str = Field(sa_type=String(18))
    client: str = Field(sa_type=String(64))  # the client's address as the service sees it
    failures: int = 0  # wrong codes in a row since the last block or success
    last_failure_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    blocks: int = 0  # blocks within a day of each other: each one lasts twice the one before
    blocked_until: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class LoginCode(SQLModel, table=True):
    """A one-time sign-in code sent by SMS to the enterprise's registered contact phone.

    Only an HMAC of the code is kept; a code is used at most once and dies at `expires_at`.
    """

    __tablename__ = "login_code"
    __table_args__ = (Index("ix_login_code_uscc_created_at", "uscc", "created_at"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    uscc: str = Field(sa_type=String(18))
    code_hash: str = Field(sa_type=String(64))
    phone_masked: str = Field(sa_type=String(32))
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)  # superseded or locked out
    ip: str | None = Field(default=None, sa_type=String(64))


class SuppliedState(StrEnum):
    """Where a value an enterprise supplied for a missing field is: waiting, verified or rejected."""

    SUBMITTED = "submitted"
    VERIFIED = "verified"
    REJECTED = "rejected"


class SuppliedValue(SQLModel, table=True):
    """A missing profile field's value supplied by the enterprise with evidence, for its department to check.

    The evidence file is stored outside the web root under a random name (`evidence_path`); its type is
    what its bytes are (sniffed), never what the browser said.
    """

    __tablename__ = "supplied_value"
    __table_args__ = (CheckConstraint(allowed("state", SuppliedState), name="state"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    uscc: str = Field(sa_type=String(18), index=True)
    run_id: str | None = Field(default=None, sa_type=String(64))  # the match run that found it missing
    policy_id: str = Field(sa_type=String(64))
    item_id: str = Field(sa_type=String(64))
    field: str = Field(sa_type=String(64))  # the catalog field supplied (a stored one, never derived)
    missing_field: str = Field(sa_type=String(64))  # the field the run named (may be a derived one)
    snapshot_table: str = Field(sa_type=String(32))
    snapshot_column: str = Field(sa_type=String(64))
    year: int | None = None  # the row of a yearly table (the policy's assessment year)
    value: str = Field(sa_type=Text)  # canonical text of the typed value
    department: str = Field(sa_type=Text, index=True)  # the field's department, who verifies it
    note: str | None = Field(default=None, sa_type=Text)
    evidence_name: str = Field(sa_type=Text)  # the file name as uploaded, for display only
    evidence_path: str = Field(sa_type=String(64))  # random name inside the evidence folder
    evidence_type: str = Field(sa_type=String(64))  # sniffed MIME type
    evidence_size: int
    evidence_sha256: str = Field(sa_type=String(64))
    state: str = Field(sa_type=String(16))
    submitted_by: str = Field(sa_type=String(64))
    submitted_at: dt.datetime = Field(sa_type=UtcDateTime)
    decided_by: int | None = Field(default=None, foreign_key="staff_user.id")
    decided_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    reason: str | None = Field(default=None, sa_type=Text)


class DataOverride(SQLModel, table=True):
    """A verified value that the next match runs apply over the snapshot (never rewriting its files).

    One active override per (enterprise, table, column, year): a newer one retires the older.
    """

    __tablename__ = "data_override"
    __table_args__ = (Index("ix_data_override_key", "uscc", "snapshot_table", "snapshot_column"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    supplied_id: int = Field(sa_type=BigKey, foreign_key="supplied_value.id", unique=True)
    uscc: str = Field(sa_type=String(18))
    snapshot_table: str = Field(sa_type=String(32))
    snapshot_column: str = Field(sa_type=String(64))
    year: int | None = None
    value: str = Field(sa_type=Text)
    verified_by: int = Field(foreign_key="staff_user.id")
    verified_at: dt.datetime = Field(sa_type=UtcDateTime)
    active: bool = True
    retired_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class ApplicationState(StrEnum):
    """Where an application (快申快享) is: the enterprise drafts and submits; the lead department accepts,
    returns it for correction (补正, the clock stops) or rejects it."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


def _live_application_sql() -> str:
    return "state <> 'rejected'"


class Application(SQLModel, table=True):
    """An enterprise's application for one apply item (`mode: apply`) of a policy version and period.

    `prefilled` holds what the government already knew when it was opened (JSON: field → {value, source,
    as_of}); `supplied` the catalog fields the enterprise filled in; `answers` its answers to the item's
    questions (canonical text). An accepted application points to the offer it became.
    """

    __tablename__ = "application"
    __table_args__ = (
        CheckConstraint(allowed("state", ApplicationState), name="state"),
        # An (enterprise, policy, item, period) has at most one application that is not rejected.
        Index(
            "uq_application_live_key",
            "uscc",
            "policy_id",
            "item_id",
            "period",
            unique=True,
            sqlite_where=text(_live_application_sql()),
            postgresql_where=text(_live_application_sql()),
        ),
        Index("ix_application_lead_state", "lead_department", "state"),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    uscc: str = Field(sa_type=String(18), index=True)
    # The enterprise's region (GB/T 2260) from the snapshot when it was opened: region-scoped staff see only
    # their region's applications (payouts/scope.py). NULL: unknown, seen by staff of every region only.
    region_code: str | None = Field(default=None, sa_type=String(6))
    policy_id: str = Field(sa_type=String(64))
    policy_version: int
    item_id: str = Field(sa_type=String(64))
    period: str = Field(sa_type=String(32))
    state: str = Field(sa_type=String(16))
    lead_department: str = Field(sa_type=Text)
    reviewers: str = Field(sa_type=Text)  # JSON list of departments, the lead first
    time_limit_days: int  # the policy's committed working days from submission to decision
    prefilled: str = Field(sa_type=Text)
    supplied: str = Field(default="{}", sa_type=Text)
    answers: str = Field(default="{}", sa_type=Text)
    requested_amount: Decimal | None = Field(default=None, sa_type=Money)  # by the item's formula, if any
    amount: Decimal | None = Field(default=None, sa_type=Money)  # as accepted
    reason: str | None = Field(default=None, sa_type=Text)  # of a rejection
    opened_by: str = Field(sa_type=String(64))
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    updated_at: dt.datetime = Field(sa_type=UtcDateTime)
    submitted_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)  # first submission
    decided_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    decided_by: str | None = Field(default=None, sa_type=String(64))
    offer_id: int | None = Field(default=None, sa_type=BigKey, foreign_key="offer.id")


class ApplicationMaterial(SQLModel, table=True):
    """A document uploaded for one material of an application; a newer upload replaces the older."""

    __tablename__ = "application_material"

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    application_id: int = Field(sa_type=BigKey, foreign_key="application.id", index=True)
    material_id: str = Field(sa_type=String(64))
    file_name: str = Field(sa_type=Text)  # as uploaded, for display only
    stored_path: str = Field(sa_type=String(64))  # random name inside the evidence folder
    media_type: str = Field(sa_type=String(64))  # sniffed from the bytes
    size: int
    sha256: str = Field(sa_type=String(64))
    uploaded_by: str = Field(sa_type=String(64))
    uploaded_at: dt.datetime = Field(sa_type=UtcDateTime)
    active: bool = True


class ApplicationReturn(SQLModel, table=True):
    """A return for correction (补正): everything to correct, listed at once; the clock stops from
    `returned_at` until the enterprise submits again (`resumed_at`)."""

    __tablename__ = "application_return"

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    application_id: int = Field(sa_type=BigKey, foreign_key="application.id", index=True)
    corrections: str = Field(sa_type=Text)  # JSON list of texts
    returned_by: str = Field(sa_type=String(64))
    returned_at: dt.datetime = Field(sa_type=UtcDateTime)
    resumed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class ApplicationOpinion(SQLModel, table=True):
    """One reviewing department's opinion in a joint review (会签); the lead decides."""

    __tablename__ = "application_opinion"
    __table_args__ = (UniqueConstraint("application_id", "department"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    application_id: int = Field(sa_type=BigKey, foreign_key="application.id")
    department: str = Field(sa_type=Text)
    agree: bool
    note: str | None = Field(default=None, sa_type=Text)
    given_by: str = Field(sa_type=String(64))
    given_at: dt.datetime = Field(sa_type=UtcDateTime)


class Rating(SQLModel, table=True):
    """An enterprise's rating of an item once it has ended (好差评): of an offer paid (either mode) or of an
    application not accepted. A poor rating (2 or less) must be answered by the department within 5
    working days; the answer is shown to the enterprise."""

    __tablename__ = "rating"
    __table_args__ = (
        UniqueConstraint("uscc", "subject", "subject_id"),
        CheckConstraint("score BETWEEN 1 AND 5", name="score"),
        CheckConstraint("subject IN ('offer', 'application')", name="subject"),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    uscc: str = Field(sa_type=String(18))
    subject: str = Field(sa_type=String(16))
    subject_id: str = Field(sa_type=String(32))  # the offer's or application's public id
    policy_id: str = Field(sa_type=String(64))
    item_id: str = Field(sa_type=String(64))
    department: str = Field(sa_type=Text, index=True)  # whose service is rated, who answers
    score: int
    comment: str | None = Field(default=None, sa_type=Text)
    rated_at: dt.datetime = Field(sa_type=UtcDateTime)
    answer: str | None = Field(default=None, sa_type=Text)
    answered_by: str | None = Field(default=None, sa_type=String(64))
    answered_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class Mandate(SQLModel, table=True):
    """A written authorisation (委托书) by which an enterprise lets a 帮办代办 staff member act for it;
    the file is stored like other uploads, and every act under it names the agent in the audit log."""

    __tablename__ = "mandate"
    __table_args__ = (Index("ix_mandate_agent_uscc", "agent", "uscc"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    uscc: str = Field(sa_type=String(18), index=True)
    agent: str = Field(sa_type=String(64))  # the staff member's username
    file_name: str = Field(sa_type=Text)
    stored_path: str = Field(sa_type=String(64))
    media_type: str = Field(sa_type=String(64))
    sha256: str = Field(sa_type=String(64))
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_by: str | None = Field(default=None, sa_type=String(64))  # enterprise:<uscc> or the staff member
    revoke_reason: str | None = Field(default=None, sa_type=Text)  # staff: the enterprise's written request
