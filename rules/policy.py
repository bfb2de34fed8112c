"""The policy model: exactly the YAML of Contract 1 (docs/contracts.md#contract-1-policy-files), as pydantic records.

A policy is a set of shared conditions and one or more items (兑现事项), each with its own extra
conditions, an amount expression and an optional cap. Unknown keys are errors.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


def _to_fen(value: Decimal) -> Decimal:
    # `budget: 30000000` and `budget: 30000000.00` are the same money, and must fingerprint the same.
    return value.quantize(Decimal("0.01"))


Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2), AfterValidator(_to_fen)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

CATEGORIES = ("税收优惠", "降本增效", "资金奖补", "金融支持", "要素保障")
# What a policy gives (Sichuan's four kinds): relief and awards pay money; entitlements and qualifications
# do not, so they are listed in the supermarket and never matched.
KINDS = ("减免", "奖补", "权益", "资质")
MONEY_KINDS = ("减免", "奖补")
# How an item is delivered: found by the data and paid (免申即享), or applied for (快申快享).
MODES = ("free", "apply")
QUESTION_TYPES = ("text", "integer", "money", "date", "boolean", "choice")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where the rules come from: the document number and, where public, its URL."""

    document: Text
    url: str | None = None


class Condition(_Strict):
    """One granular eligibility condition, cited to its clause."""

    id: Slug
    text: Text
    clause: str | None = None
    rule: Text


class Question(_Strict):
    """A question of an application that the data cannot answer (快申快享)."""

    id: Slug
    text: Text
    type: Literal[QUESTION_TYPES]  # type: ignore[valid-type]
    choices: list[Text] = []  # for type choice: the allowed answers
    required: bool = True


class Material(_Strict):
    """A document the enterprise uploads with its application."""

    id: Slug
    name: Text
    required: bool = True
    note: Text | None = None


class Application(_Strict):
    """What an apply item (`mode: apply`) asks: catalog fields the enterprise supplies when the data lacks
    them, questions, and materials."""

    fields: list[Text] = []
    questions: list[Question] = []
    materials: list[Material] = []


class Guide(_Strict):
    """The 申兑指南 published with a policy: whom to ask, where, the committed time limit and the steps."""

    phone: Text
    department_address: Text
    # Working days from submission to decision: required when the policy has an apply item (the clock of its
    # applications); a 权益 or 资质 entry run in yearly rounds may have none.
    time_limit_days: Annotated[int, Field(ge=1, le=365)] | None = None
    flow: Annotated[list[Text], Field(min_length=1)]


class Item(_Strict):
    """One payable item (兑现事项) of a policy."""

    id: Slug
    title: Text
    conditions: list[Condition] = []
    # Apply-free items always have an amount; an apply item without one is set by the reviewing
    # department, within `cap` (which it must then have).
    amount: Text | None = None
    cap: Money | None = None
    exclusive_group: Slug | None = None
    mode: Literal[MODES] = "free"  # type: ignore[valid-type]
    application: Application | None = None

    @property
    def formula(self) -> str:
        """The amount expression. Only apply items set by their department have none, and those are never
        matched nor evaluated (`Policy.matchable`)."""
        if self.amount is None:
            raise ValueError(f"事项 {self.id} 的金额由审核部门核定，没有算式")
        return self.amount

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_as_text(cls, v: object) -> object:
        # `amount: 30000` is a constant expression; YAML reads it as a number.
        return str(v) if isinstance(v, int | float | Decimal) and not isinstance(v, bool) else v


class Policy(_Strict):
    """A versioned policy: shared conditions, items, validity, budget and allocation."""

    id: Slug
    version: Annotated[int, Field(ge=1)]
    title: Text
    department: Text
    source: Source
    valid_from: dt.date
    valid_to: dt.date
    assessment_year: Annotated[int, Field(ge=2000, le=2100)]
    period: Text
    budget: Money | None = None
    allocation: Literal["pro_rata", "rank", "none"] = "none"
    rank_by: Text | None = None
    confirmation: Literal["required", "none"] = "required"
    conditions: list[Condition] = []
    # At least one for 减免 and 奖补; none for 权益 and 资质 (rules/validate.py says so in plain words).
    items: list[Item] = []
    exclusive_group: Slug | None = None
    # The enterprise side (政策超市): optional descriptive fields.
    category: Literal[CATEGORIES] | None = None  # type: ignore[valid-type]
    tags: list[Text] = []
    summary: Text | None = None
    audience: Text | None = None
    # Public notice (公示): days a payout batch's recipients stay on public notice before it can be approved,
    # in calendar days, or in working days of the official calendar (`notice_working_days`; one of the two).
    notice_days: Annotated[int, Field(ge=0, le=365)] | None = None
    notice_working_days: Annotated[int, Field(ge=1, le=60)] | None = None
    # The department's service phone for this policy (咨询电话), named in its SMS and on its pages so that
    # an enterprise can check the message by calling a number it can look up; unset: the deployment's
    # (ZHIDA_SERVICE_PHONE).
    service_phone: Annotated[str, Field(pattern=r"^[0-9][0-9-]{3,19}$")] | None = None
    # Supervision: the policy's own committed time limits (its guide's 承诺时限) in working days, for 初核
    # and from confirmation to money (at least 4: 组批 2 and 复核 1 leave the bank a day); None: the SLA's.
    review_limit_days: Annotated[int, Field(ge=1, le=60)] | None = None
    payment_limit_days: Annotated[int, Field(ge=4, le=120)] | None = None
    # Outreach: its near-miss and missing-data enterprises are told by SMS what is missing (capped).
    outreach: bool = False
    # 快申快享: what the policy gives, its 申兑指南, and the departments that review applications (会签;
    # the first leads and decides).
    kind: Literal[KINDS] | None = None  # type: ignore[valid-type]
    guide: Guide | None = None
    reviewers: list[Text] = []

    @field_validator("period", mode="before")
    @classmethod
    def _period_as_text(cls, v: object) -> object:
        # The dedupe key is compared as text; `period: 2025` means "2025".
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    def item(self, item_id: str) -> Item:
        return next(i for i in self.items if i.id == item_id)

    def group_of(self, item: Item) -> str | None:
        """The exclusive group an item belongs to: its own, or else its policy's."""
        return item.exclusive_group or self.exclusive_group

    def active_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def gives_money(self) -> bool:
        """Whether the policy pays (减免, 奖补); a policy without a kind is an award, as before kinds."""
        return self.kind is None or self.kind in MONEY_KINDS

    @property
    def lead_reviewer(self) -> str:
        """The department that decides applications: the first reviewer, else the policy's department."""
        return self.reviewers[0] if self.reviewers else self.department

    def matchable(self) -> Policy | None:
        """The policy as the matcher sees it: its apply-free items only; None when it has none (an apply-only
        policy, or a 权益/资质 entry). Apply items are pre-screened per enterprise, not matched."""
        free = [i for i in self.items if i.mode == "free"]
        if not self.gives_money or not free:
            return None
        return self if len(free) == len(self.items) else self.model_copy(update={"items": free})

    def canonical(self) -> dict[str, Any]:
        """The content that fingerprints the policy: the JSON of the model, without the 快申快享 keys
        left at their defaults, so that policies written before those keys keep their fingerprints."""
        data = self.model_dump(mode="json")
        defaults: dict[str, Any] = {"kind": None, "guide": None, "reviewers": []}
        item_defaults: dict[str, Any] = {"mode": "free", "application": None}
        for key, default in defaults.items():
            if data[key] == default:
                del data[key]
        for item in data["items"]:
            for key, default in item_defaults.items():
                if item[key] == default:
                    del item[key]
        return data
