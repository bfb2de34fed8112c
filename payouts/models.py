"""The payouts tables (SQLModel): match runs, policies, payees, offers, SMS, confirmations, batches,
bank returns, the audit log and staff users.

The schema is created by the alembic migrations in `payouts/migrations/`, never by `create_all`; a test
checks that these classes and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from payouts.sqltypes import Money, UtcDateTime

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BigKey = BigInteger().with_variant(Integer(), "sqlite")


class OfferState(StrEnum):
    """Where an offer is in its life (docs/contracts.md#offer-states)."""

    DRAFTED = "drafted"
    RELEASED = "released"
    NOTIFIED = "notified"
    CONFIRMED = "confirmed"
    IN_BATCH = "in_batch"
    PAID = "paid"
    DECLINED = "declined"
    EXPIRED = "expired"
    HELD = "held"
    DROPPED = "dropped"
    PAYMENT_FAILED = "payment_failed"


# An offer in one of these states no longer claims its (enterprise, policy, item, period).
CLOSED_STATES = (OfferState.DROPPED, OfferState.DECLINED, OfferState.EXPIRED)
# Offers waiting for an SMS or for the enterprise's answer.
WAITING_STATES = (OfferState.RELEASED, OfferState.NOTIFIED)


class BatchState(StrEnum):
    """Where a payout batch is: maker assembles, a different checker approves, then bank files."""

    ASSEMBLED = "assembled"
    APPROVED = "approved"
    EXPORTED = "exported"
    RECONCILED = "reconciled"
    REJECTED = "rejected"


class LineStatus(StrEnum):
    """A batch line's outcome: waiting for the bank, paid, failed, or withdrawn with its batch."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


class Role(StrEnum):
    """What a staff user may do; see `payouts.users.PERMISSIONS`.

    Administration is split three ways (三员分立): the system administrator manages users, the security
    administrator reviews role assignments, unlocks accounts and keeps the security settings, and the
    auditor (安全审计员) reads and verifies the audit log; none of them moves money.
    """

    POLICY = "policy"
    REVIEWER = "reviewer"
    FINANCE_MAKER = "finance_maker"
    FINANCE_CHECKER = "finance_checker"
    AUDITOR = "auditor"
    SYSTEM_ADMIN = "system_admin"
    SECURITY_ADMIN = "security_admin"
    # 帮办代办: acts for an enterprise (applies, uploads, submits) on an uploaded 委托书 (portal.agency).
    AGENT = "agent"


class PayeeChangeState(StrEnum):
    """A proposed payee account change: waiting for a second person, approved (in effect) or rejected."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


def allowed(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _closed_sql() -> str:
    return f"state NOT IN ({', '.join(repr(s.value) for s in CLOSED_STATES)})"


def _waiting_sql() -> str:
    return f"state IN ({', '.join(repr(s.value) for s in WAITING_STATES)})"


class DepartmentLevel(StrEnum):
    """Where a department sits: a province's 厅, a city's or a county's 局; national for a ministry."""

    NATIONAL = "national"
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


class Department(SQLModel, table=True):
    """A government department (长沙市人力资源和社会保障局): its level, its region (GB/T 2260) and its
    superior in the same line (芙蓉区人社局 → 长沙市人社局 → 湖南省人社厅). Its staff act on the policies of
    their own department and of its superiors, for the enterprises of its region (`payouts/scope.py`).

    `level` and `region_code` are NULL for a department carried over from a user's department name by
    migration 0018: its staff keep seeing every region until `zhida departments set` places it."""

    __tablename__ = "department"
    __table_args__ = (CheckConstraint(f"level IS NULL OR {allowed('level', DepartmentLevel)}", name="level"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(100), unique=True)
    level: str | None = Field(default=None, sa_type=String(16))
    region_code: str | None = Field(default=None, sa_type=String(6))
    parent_id: int | None = Field(default=None, foreign_key="department.id", index=True)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)


class StaffUser(SQLModel, table=True):
    """A member of staff who acts on offers and batches; `role` decides what they may do."""

    __tablename__ = "staff_user"
    __table_args__ = (CheckConstraint(allowed("role", Role), name="role"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_type=String(64), unique=True)
    display_name: str = Field(sa_type=String(100))
    role: str = Field(sa_type=String(32))
    # The user's department (`department_id`) and its name, copied so that the many checks by name (the
    # policy's department, the field's department) need no join; both are set together (payouts.users).
    department: str | None = Field(default=None, sa_type=String(100))
    department_id: int | None = Field(default=None, foreign_key="department.id", index=True)
    password_hash: str | None = Field(default=None, sa_type=String(255))
    active: bool = Field(default=True)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    # Sign-in failures (payouts/signin.py): wrong passwords since `failed_since`, counted within a window;
    # too many lock the account (`locked_at`) until a security administrator unlocks it.
    # Where the SLA's reminders reach the user, and whether the user heads the department (escalations).
    phone: str | None = Field(default=None, sa_type=String(32))
    email: str | None = Field(default=None, sa_type=String(255))
    head: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    failed_logins: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    failed_since: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    locked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class StaffSession(SQLModel, table=True):
    """A staff sign-in, kept on the server: the token is random and stored only as its SHA-256, so a copy of
    the database opens nothing; a session ends at sign-out, after idling or past its absolute limit."""

    __tablename__ = "staff_session"

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    token_hash: str = Field(sa_type=String(64), unique=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    last_seen_at: dt.datetime = Field(sa_type=UtcDateTime)  # coarse: updated at most once a minute
    ended_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    end_reason: str | None = Field(default=None, sa_type=String(32))  # sign_out, password, disabled, ...
    ip: str | None = Field(default=None, sa_type=String(64))


class StaffToken(SQLModel, table=True):
    """A CLI identity token (`zhida users token`): only its SHA-256 is kept; it ends at `expires_at`, when
    revoked, or when its user's password changes (`password_fp` no longer matches)."""

    __tablename__ = "staff_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=String(64), unique=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    password_fp: str = Field(sa_type=String(64))
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class MatchRun(SQLModel, table=True):
    """One imported match run (Contract 4): where its offers came from."""

    __tablename__ = "match_run"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(sa_type=String(64), unique=True)
    as_of: dt.date = Field(sa_type=Date)
    snapshot_fingerprint: str = Field(sa_type=String(128))
    rules_fingerprint: str = Field(sa_type=String(128))
    path: str = Field(sa_type=Text)
    manifest: str = Field(sa_type=Text)
    imported_at: dt.datetime = Field(sa_type=UtcDateTime)
    imported_by: int = Field(foreign_key="staff_user.id")
    offers: int = 0
    held: int = 0
    skipped: int = 0
    amount: Decimal = Field(default=Decimal("0.00"), sa_type=Money)


class PolicyVersion(SQLModel, table=True):
    """A published policy version as the match run's manifest described it; immutable once imported."""

    __tablename__ = "policy_version"
    __table_args__ = (UniqueConstraint("policy_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    policy_id: str = Field(sa_type=String(64), index=True)
    version: int
    title: str = Field(sa_type=Text)
    department: str = Field(sa_type=Text)
    period: str = Field(sa_type=String(32))
    budget: Decimal | None = Field(default=None, sa_type=Money)
    allocation: str = Field(sa_type=String(16))
    confirmation: str = Field(sa_type=String(16))
    items: str = Field(sa_type=Text)  # JSON: [{"id", "title", "conditions"}]
    conditions: str = Field(sa_type=Text)  # JSON: the shared conditions with their clauses
    notice_days: int | None = None  # public notice (公示) before a batch may be approved; None: no notice
    notice_working: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})  # in working days
    service_phone: str | None = Field(default=None, sa_type=String(32))  # 咨询电话; None: the deployment's
    review_days: int | None = None  # the policy's own committed 初核 limit (working days); None: the SLA's
    payment_days: int | None = None  # its own limit from confirmation to money; None: the SLA's
    outreach: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})  # tell near-misses
    # Joint review (会签): JSON list of the reviewing departments, the lead first; NULL: the department alone.
    reviewers: str | None = Field(default=None, sa_type=Text)


class PolicyText(SQLModel, table=True):
    """An uploaded policy file (a draft) or a published version, with its YAML text: the policy store.

    One row per (policy, version): a draft becomes published in place, and a published row is never
    changed again. Match runs copy the latest published texts into their own folder.
    """

    __tablename__ = "policy_text"
    __table_args__ = (
        UniqueConstraint("policy_id", "version"),
        CheckConstraint("status IN ('draft', 'published')", name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    policy_id: str = Field(sa_type=String(64))
    version: int
    status: str = Field(sa_type=String(16))
    text: str = Field(sa_type=Text)  # the file as uploaded (UTF-8)
    sha256: str = Field(sa_type=String(64))  # of the uploaded bytes
    title: str = Field(sa_type=Text)
    department: str = Field(sa_type=Text)
    valid_from: dt.date = Field(sa_type=Date)
    valid_to: dt.date = Field(sa_type=Date)
    file_name: str = Field(sa_type=String(255))
    uploaded_by: str = Field(sa_type=String(64))
    uploaded_at: dt.datetime = Field(sa_type=UtcDateTime)
    published_by: str | None = Field(default=None, sa_type=String(64))
    published_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class Payee(SQLModel, table=True):
    """The registered corporate account (对公账户) an offer pays to: from a snapshot, or corrected by staff."""

    __tablename__ = "payee"

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    uscc: str = Field(sa_type=String(18), index=True)
    name: str = Field(sa_type=Text)
    contact_phone: str | None = Field(default=None, sa_type=String(32))
    bank_name: str | None = Field(default=None, sa_type=Text)
    account_no: str | None = Field(default=None, sa_type=String(64))
    account_name: str | None = Field(default=None, sa_type=Text)
    source: str = Field(sa_type=String(16))  # "snapshot" | "staff"
    match_run_id: int | None = Field(default=None, foreign_key="match_run.id", index=True)
    supersedes_id: int | None = Field(default=None, sa_type=BigKey, foreign_key="payee.id")
    reason: str | None = Field(default=None, sa_type=Text)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)


class PayeeChange(SQLModel, table=True):
    """A proposed change of an enterprise's registered account: it takes effect only when a second
    member of staff approves it (`payouts.payees.approve_account_change`); the proposer never can."""

    __tablename__ = "payee_change"
    __table_args__ = (CheckConstraint(allowed("state", PayeeChangeState), name="state"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    uscc: str = Field(sa_type=String(18), index=True)
    old_payee_id: int = Field(sa_type=BigKey, foreign_key="payee.id")
    bank_name: str = Field(sa_type=Text)
    account_no: str = Field(sa_type=String(64))
    account_name: str = Field(sa_type=Text)
    contact_phone: str | None = Field(default=None, sa_type=String(32))
    reason: str = Field(sa_type=Text)
    state: str = Field(sa_type=String(16))
    proposed_by: int = Field(foreign_key="staff_user.id")
    proposed_at: dt.datetime = Field(sa_type=UtcDateTime)
    decided_by: int | None = Field(default=None, foreign_key="staff_user.id")
    decided_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    decision_reason: str | None = Field(default=None, sa_type=Text)
    new_payee_id: int | None = Field(default=None, sa_type=BigKey, foreign_key="payee.id")


class Offer(SQLModel, table=True):
    """A pre-approved subsidy for one enterprise and one policy item, from review to payment."""

    __tablename__ = "offer"
    __table_args__ = (
        CheckConstraint(allowed("state", OfferState), name="state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # An (enterprise, policy, item, period) is offered, and so paid, at most once across runs.
        Index(
            "uq_offer_live_key",
            "uscc",
            "policy_id",
            "item_id",
            "period",
            unique=True,
            sqlite_where=text(_closed_sql()),
            postgresql_where=text(_closed_sql()),
        ),
        Index("ix_offer_policy_period_state", "policy_id", "period", "state"),
        Index("ix_offer_uscc", "uscc"),  # an enterprise's own offers (企业端), closed ones included
        Index("ix_offer_state_id", "state", "id"),  # a state's offers in import order (console lists)
        Index("ix_offer_payee_id", "payee_id"),  # offers of the payees found by name
        Index("ix_offer_paid_at", "paid_at"),  # items paid lately: their closing SMS (portal.ratings)
        # A region-scoped user's offers: a prefix of the region code (LIKE '4301%', payouts/scope.py), which
        # PostgreSQL answers from a B-tree only with the pattern operator class whatever the collation.
        Index("ix_offer_region_code", "region_code", postgresql_ops={"region_code": "varchar_pattern_ops"}),
        # The SMS queue, reminders and the expiry sweep look for these states only; a partial index
        # stays empty while a million offers are imported.
        Index(
            "ix_offer_waiting",
            "state",
            "deadline",
            sqlite_where=text(_waiting_sql()),
            postgresql_where=text(_waiting_sql()),
        ),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    match_run_id: int | None = Field(
        default=None, foreign_key="match_run.id", index=True
    )  # None: from an application
    policy_id: str = Field(sa_type=String(64))
    policy_version: int
    item_id: str = Field(sa_type=String(64))
    period: str = Field(sa_type=String(32))
    uscc: str = Field(sa_type=String(18))  # found through uq_offer_live_key
    # The enterprise's industry section (GB/T 4754 门类 letter) and size class (large/medium/small/micro)
    # as the run's profile had them, for the review queue's filters; NULL when the run folder lacks them.
    industry_section: str | None = Field(default=None, sa_type=String(1))
    size_class: str | None = Field(default=None, sa_type=String(16))
    # The enterprise's region (GB/T 2260, 6 digits) from the profile: what region-scoped staff see
    # (payouts/scope.py). NULL until known: such an offer is seen only by staff of every region.
    region_code: str | None = Field(default=None, sa_type=String(6))
    amount: Decimal = Field(sa_type=Money)
    amount_before_allocation: Decimal = Field(sa_type=Money)
    payee_id: int = Field(sa_type=BigKey, foreign_key="payee.id")
    state: str = Field(sa_type=String(16))
    hold_reason: str | None = Field(default=None, sa_type=Text)
    round: int = 0  # how many times the offer was released; each release is one SMS round
    deadline: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    released_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    notified_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    confirmed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    paid_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: dt.datetime = Field(sa_type=UtcDateTime)


class OfferOpinion(SQLModel, table=True):
    """A co-reviewing department's opinion (会签意见) on an offer of a policy reviewed jointly, for one review
    round; the lead department decides (release, hold, drop) once every co-reviewer has given one."""

    __tablename__ = "offer_opinion"
    __table_args__ = (UniqueConstraint("offer_id", "department", "round"),)

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    offer_id: int = Field(sa_type=BigKey, foreign_key="offer.id")
    department: str = Field(sa_type=String(100))
    round: int = 0  # the offer's `round` when the opinion was given (a re-release asks again)
    agree: bool
    note: str | None = Field(default=None, sa_type=Text)
    given_by: str = Field(sa_type=String(64))
    given_at: dt.datetime = Field(sa_type=UtcDateTime)


class SmsMessage(SQLModel, table=True):
    """One message in the outbox: an SMS to an enterprise about its offer (the link token kept only as
    its SHA-256 hash), or, without an offer, an SMS or e-mail (`channel`) to staff (SLA reminders,
    escalations) or to an enterprise that nearly qualifies (outreach), sent once per `dedupe_key`."""

    __tablename__ = "sms_message"
    __table_args__ = (
        UniqueConstraint("offer_id", "round", "kind"),
        Index("ix_sms_message_kind_uscc", "kind", "uscc"),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    offer_id: int | None = Field(default=None, sa_type=BigKey, foreign_key="offer.id")
    round: int
    kind: str = Field(
        sa_type=String(16)
    )  # "notice" | "reminder_<n>d" | "sla_1d" | "sla_1h" | "escalation" | "outreach"
    phone: str = Field(sa_type=String(255))  # the e-mail address for channel "email"
    channel: str = Field(default="sms", sa_type=String(8), sa_column_kwargs={"server_default": "sms"})
    subject: str | None = Field(default=None, sa_type=Text)  # e-mail only
    dedupe_key: str | None = Field(
        default=None, sa_type=String(160), unique=True
    )  # messages without an offer
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id")
    uscc: str | None = Field(default=None, sa_type=String(18))  # outreach: the enterprise told
    policy_id: str | None = Field(default=None, sa_type=String(64))  # outreach: about which policy
    text: str = Field(sa_type=Text)  # as sent, with the token cut out of the link
    token_hash: str | None = Field(default=None, sa_type=String(64), unique=True)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime)
    status: str = Field(sa_type=String(16))  # "queued" | "sent" | "failed"
    attempts: int = 0
    gateway: str | None = Field(default=None, sa_type=String(32))
    provider_ref: str | None = Field(default=None, sa_type=String(128))
    error: str | None = Field(default=None, sa_type=Text)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class SmsOptOut(SQLModel, table=True):
    """A phone number that answered 回复TD退订: every SMS sender skips it (`payouts.sms.opted_out`)."""

    __tablename__ = "sms_optout"

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(sa_type=String(32), unique=True)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    source: str = Field(sa_type=String(32))  # "reply" (the gateway's upstream message) | "staff"


class SmsReply(SQLModel, table=True):
    """One upstream SMS (an enterprise's reply) the gateway passed on, taken once by its provider id; a
    stop word (TD, T, 退订) puts the number on the opt-out list (`payouts.outbox.take_reply`)."""

    __tablename__ = "sms_reply"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(sa_type=String(128), unique=True)
    phone: str = Field(sa_type=String(32))
    text: str = Field(sa_type=Text)
    stop: bool
    received_at: dt.datetime = Field(sa_type=UtcDateTime)


class Confirmation(SQLModel, table=True):
    """The enterprise's answer to one SMS round: confirm, decline, or "my account is wrong"."""

    __tablename__ = "confirmation"
    __table_args__ = (
        UniqueConstraint("offer_id", "round"),
        CheckConstraint("kind IN ('confirm', 'decline', 'account_wrong')", name="kind"),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    offer_id: int = Field(sa_type=BigKey, foreign_key="offer.id")
    round: int
    kind: str = Field(sa_type=String(16))
    sms_message_id: int = Field(sa_type=BigKey, foreign_key="sms_message.id")
    at: dt.datetime = Field(sa_type=UtcDateTime)
    ip: str | None = Field(default=None, sa_type=String(64))
    user_agent: str | None = Field(default=None, sa_type=Text)
    note: str | None = Field(default=None, sa_type=Text)


class Batch(SQLModel, table=True):
    """A payout batch of one policy and period: assembled by a maker, approved by a different checker."""

    __tablename__ = "batch"
    __table_args__ = (
        CheckConstraint(allowed("state", BatchState), name="state"),
        CheckConstraint("checker_id IS NULL OR checker_id <> maker_id", name="four_eyes"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_type=String(35), unique=True)
    policy_id: str = Field(sa_type=String(64), index=True)
    period: str = Field(sa_type=String(32))
    state: str = Field(sa_type=String(16))
    maker_id: int = Field(foreign_key="staff_user.id")
    checker_id: int | None = Field(default=None, foreign_key="staff_user.id")
    line_count: int
    total: Decimal = Field(sa_type=Money)
    payer_name: str = Field(sa_type=Text)
    payer_account: str = Field(sa_type=String(64))
    payer_bank: str = Field(sa_type=Text)
    purpose: str = Field(sa_type=Text)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    approved_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    exported_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    reconciled_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    rejected_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    reason: str | None = Field(default=None, sa_type=Text)
    csv_sha256: str | None = Field(default=None, sa_type=String(64))
    xml_sha256: str | None = Field(default=None, sa_type=String(64))
    # Who pays (payouts.finance): the payer account's code ("" for the settings' default payer), the file
    # format it asks for, the fund source and budget index it draws on, and its share of each offer. Batches
    # made together for a cost-shared policy (one per payer) carry the reference of the first as `group_ref`.
    payer_code: str = Field(default="", sa_type=String(32), sa_column_kwargs={"server_default": ""})
    file_format: str = Field(
        default="bank_csv", sa_type=String(16), sa_column_kwargs={"server_default": "bank_csv"}
    )
    adm_div_code: str | None = Field(default=None, sa_type=String(12))
    fund_source: str | None = Field(default=None, sa_type=Text)
    budget_no: str | None = Field(default=None, sa_type=String(64))
    share: str | None = Field(default=None, sa_type=String(32))  # "1/2": this payer's part of each offer
    group_ref: str | None = Field(default=None, sa_type=String(35), index=True)
    voucher_sha256: str | None = Field(default=None, sa_type=String(64))
    # The region prefix (GB/T 2260) of the maker who assembled it: its lines are that region's enterprises
    # only, and only staff of that region or a wider one see it. NULL: every region.
    region: str | None = Field(default=None, sa_type=String(6))


class BatchLine(SQLModel, table=True):
    """One transfer in a batch, with the payee's account copied in as it was when the batch was made."""

    __tablename__ = "batch_line"
    __table_args__ = (
        UniqueConstraint("batch_id", "line_no"),
        CheckConstraint(allowed("status", LineStatus), name="status"),
        # An offer has at most one live line per payer (and a paid line stays live for ever).
        Index(
            "uq_batch_line_live_offer_payer",
            "offer_id",
            "payer_code",
            unique=True,
            sqlite_where=text("live"),
            postgresql_where=text("live"),
        ),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    line_no: int
    reference: str = Field(sa_type=String(35), unique=True)
    offer_id: int = Field(sa_type=BigKey, foreign_key="offer.id", index=True)
    payee_id: int = Field(sa_type=BigKey, foreign_key="payee.id")
    payer_code: str = Field(default="", sa_type=String(32), sa_column_kwargs={"server_default": ""})
    amount: Decimal = Field(sa_type=Money)
    account_name: str = Field(sa_type=Text)
    account_no: str = Field(sa_type=String(64))
    bank_name: str = Field(sa_type=Text)
    status: str = Field(sa_type=String(16))
    live: bool = True
    bank_reason: str | None = Field(default=None, sa_type=Text)
    bank_return_id: int | None = Field(default=None, foreign_key="bank_return.id")
    settled_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class FileFormat(StrEnum):
    """The file a payer account's bank or treasury takes (payouts.bankfiles, payouts.vouchers)."""

    BANK_CSV = "bank_csv"  # 批量代发 CSV
    PAIN001 = "pain001"  # ISO 20022 pain.001.001.09
    TREASURY = "treasury"  # 国库集中支付电子凭证


class PayerAccount(SQLModel, table=True):
    """One version of a payer account (付款账户) the finance bureau keeps: every change adds a version,
    so the history is the table itself; the newest version of a code is in force."""

    __tablename__ = "payer_account"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(allowed("file_format", FileFormat), name="file_format"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_type=String(32))
    version: int
    name: str = Field(sa_type=Text)  # 户名
    account_no: str = Field(sa_type=String(64))
    bank_name: str = Field(sa_type=Text)
    file_format: str = Field(sa_type=String(16))
    adm_div_code: str | None = Field(default=None, sa_type=String(12))  # 行政区划代码 (treasury voucher)
    active: bool = True
    set_by: str = Field(sa_type=String(64))
    set_at: dt.datetime = Field(sa_type=UtcDateTime)
    reason: str | None = Field(default=None, sa_type=Text)


class PolicyFunding(SQLModel, table=True):
    """One payer's part in one version of a policy's funding (资金来源): which account pays, from which
    fund and budget index, and its share; the rows of a policy's newest version are in force."""

    __tablename__ = "policy_funding"
    __table_args__ = (
        UniqueConstraint("policy_id", "version", "payer_code"),
        CheckConstraint("share > 0", name="share_positive"),
        Index("ix_policy_funding_budget_no", "budget_no"),
    )

    id: int | None = Field(default=None, primary_key=True)
    policy_id: str = Field(sa_type=String(64), index=True)
    version: int
    payer_code: str = Field(sa_type=String(32))
    share: int
    fund_source: str = Field(sa_type=Text)  # 资金来源, e.g. 市级财政专项资金
    budget_no: str = Field(sa_type=String(64))  # 预算指标文号
    # 指标金额: what the 预算指标 allows in all (None: not recorded, nothing checked); batches approved
    # against it may not exceed it (`finance.index_balance`).
    budget_amount: Decimal | None = Field(default=None, sa_type=Money)
    set_by: str = Field(sa_type=String(64))
    set_at: dt.datetime = Field(sa_type=UtcDateTime)
    reason: str | None = Field(default=None, sa_type=Text)


class BankReturn(SQLModel, table=True):
    """One imported bank return file (回单); the same file is never applied twice."""

    __tablename__ = "bank_return"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    file_sha256: str = Field(sa_type=String(64), unique=True)
    filename: str = Field(sa_type=Text)
    imported_at: dt.datetime = Field(sa_type=UtcDateTime)
    imported_by: int = Field(foreign_key="staff_user.id")
    lines: int
    paid: int
    failed: int
    paid_amount: Decimal = Field(sa_type=Money)
    failed_amount: Decimal = Field(sa_type=Money)


class AuditEvent(SQLModel, table=True):
    """One state change: who, when, what, from, to, why. Append-only and hash-chained."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_entity", "entity", "entity_id"),)

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: dt.datetime = Field(sa_type=UtcDateTime)
    actor: str = Field(sa_type=String(64))
    action: str = Field(sa_type=String(32))
    entity: str = Field(sa_type=String(16))
    entity_id: str = Field(sa_type=String(64))
    from_state: str | None = Field(default=None, sa_type=String(16))
    to_state: str | None = Field(default=None, sa_type=String(16))
    reason: str | None = Field(default=None, sa_type=Text)
    data: str = Field(sa_type=Text)  # canonical JSON
    prev_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64))
    # 1: hash is plain SHA-256 (written before the chain was keyed); 2: HMAC-SHA256 under the audit key
    chain: int = Field(default=2, sa_column=Column(SmallInteger, nullable=False, server_default="1"))


class AuditMember(SQLModel, table=True):
    """The things one bulk event is about (e.g. the million offers one import created), one row each.

    The event stores their count and digest, so the membership is covered by the hash chain too.
    """

    __tablename__ = "audit_member"
    __table_args__ = (Index("ix_audit_member_entity_id", "entity_id"),)

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entity_id: str = Field(sa_type=String(64), primary_key=True)


class AuditHead(SQLModel, table=True):
    """The single row that names the chain's last event; appenders lock it so the chain cannot fork."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(sa_type=BigInteger)
    hash: str = Field(sa_type=String(64))


class ObjectionState(StrEnum):
    """An objection (异议) to a public notice: open until staff uphold or dismiss it."""

    OPEN = "open"
    UPHELD = "upheld"
    DISMISSED = "dismissed"


class PublicNotice(SQLModel, table=True):
    """A batch's recipients on public notice (公示) from `starts_at` to `ends_at`; one per batch."""

    __tablename__ = "public_notice"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    batch_id: int = Field(foreign_key="batch.id", unique=True)
    policy_id: str = Field(sa_type=String(64), index=True)
    title: str = Field(sa_type=Text)
    days: int
    working: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})  # `days` are working days
    starts_at: dt.datetime = Field(sa_type=UtcDateTime)
    ends_at: dt.datetime = Field(sa_type=UtcDateTime, index=True)
    opened_by: int = Field(foreign_key="staff_user.id")

    @property
    def period_text(self) -> str:
        """The length as people read it: 7 天, 5 个工作日."""
        return f"{self.days} 个工作日" if self.working else f"{self.days} 天"


class Objection(SQLModel, table=True):
    """An objection (异议) anyone filed against one line of a public notice, and how staff resolved it."""

    __tablename__ = "objection"
    __table_args__ = (CheckConstraint(allowed("state", ObjectionState), name="state"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)
    notice_id: int = Field(foreign_key="public_notice.id", index=True)
    batch_line_id: int = Field(sa_type=BigKey, foreign_key="batch_line.id")
    name: str = Field(sa_type=Text)
    contact: str = Field(sa_type=String(100))
    text: str = Field(sa_type=Text)
    ip: str | None = Field(default=None, sa_type=String(64))
    filed_at: dt.datetime = Field(sa_type=UtcDateTime)
    state: str = Field(sa_type=String(16))
    resolved_by: int | None = Field(default=None, foreign_key="staff_user.id")
    resolved_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolution: str | None = Field(default=None, sa_type=Text)


class JobState(StrEnum):
    """Where a durable job is (payouts/jobs.py): waiting, held by a worker under a lease, or ended."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(SQLModel, table=True):
    """One durable job (a match run, an SMS wave, the reminders, the expiry sweep), run by `zhida worker`.

    A worker holds a running job under a lease it renews by heartbeat; a job whose lease ran out (its
    worker died) is queued again, up to `max_attempts`, then failed with an error users can read.
    `period_key` is set on scheduled jobs only: one job per kind and period, whatever the workers.
    """

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(allowed("state", JobState), name="state"),
        Index("ix_job_state_run_after", "state", "run_after"),
        Index("ix_job_created_at", "created_at"),
    )

    id: int | None = Field(default=None, sa_type=BigKey, primary_key=True)
    public_id: str = Field(sa_type=String(32), unique=True)  # random: in the console's and API's URLs
    kind: str = Field(sa_type=String(32))
    params: str = Field(sa_type=Text)  # JSON: what the handler of `kind` needs
    state: str = Field(sa_type=String(16))
    attempts: int = 0
    max_attempts: int = 3
    run_after: dt.datetime = Field(sa_type=UtcDateTime)
    lease_until: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    heartbeat_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    worker: str | None = Field(default=None, sa_type=String(128))
    period_key: str | None = Field(default=None, sa_type=String(64), unique=True)
    result: str | None = Field(default=None, sa_type=Text)  # JSON
    error: str | None = Field(default=None, sa_type=Text)  # Chinese, for users
    started_by: str = Field(sa_type=String(64))  # a staff username, or "system" for scheduled jobs
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    started_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
