"""The policy model: exactly the YAML of Contract 1 (docs/contracts.md#contract-1-policy-files), as pydantic records.

A policy is a set of shared conditions and one or more items (兑现事项), each with its own extra
conditions, an amount expression and an optional cap. Unknown keys are errors.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


def _to_fen(value: Decimal) -> Decimal:
    # `budget: 30000000` and `budget: 30000000.00` are the same money, and must fingerprint the same.
    return value.quantize(Decimal("0.01"))


Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2), AfterValidator(_to_fen)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

CATEGORIES = ("税收优惠", "降本增效", "资金奖补", "金融支持", "要素保障")


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


class Item(_Strict):
    """One payable item (兑现事项) of a policy."""

    id: Slug
    title: Text
    conditions: list[Condition] = []
    amount: Text
    cap: Money | None = None
    exclusive_group: Slug | None = None

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
    items: Annotated[list[Item], Field(min_length=1)]
    exclusive_group: Slug | None = None
    # The enterprise side (政策超市): optional descriptive fields.
    category: Literal[CATEGORIES] | None = None  # type: ignore[valid-type]
    tags: list[Text] = []
    summary: Text | None = None
    audience: Text | None = None
    # Public notice (公示): days a payout batch's recipients stay on public notice before it can be approved.
    notice_days: Annotated[int, Field(ge=0, le=365)] | None = None
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
