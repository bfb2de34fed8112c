"""Applications (快申快享): pre-filled values, everything missing listed at once, joint review, and an
accepted application becoming a confirmed offer that a batch pays, never past the policy's budget."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from payouts import audit, batches, users
from payouts.errors import NotFoundError, RoleError
from payouts.models import BatchLine, Offer, Payee
from portal import applications as apps
from portal.applications import Known
from portal.models import Application
from rules.errors import BudgetError, PayoutError, StateError
from rules.validate import parse_policy_text
from tests.payouts.test_concurrency import run_together

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
H = dt.timedelta(hours=1)
A, B = "91430100MA4L0AAA1X", "91430100MA4L0BBB2Y"

POLICY = """\
id: ks-yanfa
version: 1
title: 研发投入后补助
department: 市科学技术局
source: {{document: 某科发〔2025〕3号}}
valid_from: 2025-01-01
valid_to: 2025-12-31
assessment_year: 2024
period: "2025"
budget: {budget}
kind: 奖补
guide:
  phone: "0731-88888888"
  department_address: 市政务服务中心二楼科技窗口
  time_limit_days: 20
  flow: [网上申请, 部门审核, 资金拨付]
reviewers: [市科学技术局, 市财政局]
conditions:
  - {{id: honest, text: 未被列入严重失信主体名单, rule: not serious_dishonest}}
items:
  - id: subsidy
    title: 研发投入后补助
    mode: apply
    conditions:
      - {{id: rd, text: 上年度研发费用不少于100万元, rule: rd_expense >= 1000000}}
    amount: rd_expense * 0.1
    cap: 500000.00
    application:
      fields: [rd_expense]
      questions:
        - {{id: projects, text: 在研项目数, type: integer}}
      materials:
        - {{id: audit, name: 研发费用专项审计报告}}
"""


def policy(budget: str = "1000000.00"):
    return parse_policy_text(POLICY.format(budget=budget), "ks-yanfa.yaml")


KNOWN = {
    "serious_dishonest": Known("false", "发展和改革委员会（信用办）", dt.date(2025, 5, 31)),
    "employees": Known("35", "市场监督管理局（企业年报）", dt.date(2025, 5, 31)),
}


@pytest.fixture
def staff(tx, t0) -> None:
    with tx() as s:
        users.create_user(s, "kj", "policy", department="市科学技术局", carry_over=True, now=t0)
        users.create_user(s, "cz", "reviewer", department="市财政局", carry_over=True, now=t0)
        users.create_user(s, "sw", "reviewer", department="市商务局", carry_over=True, now=t0)
        for uscc in (A, B, *[f"91430100MA4L{n:04d}0X" for n in range(8)]):
            s.add(
                Payee(
                    uscc=uscc,
                    name=f"企业{uscc[-4:]}",
                    bank_name="某银行",
                    account_no="6222000011112222",
                    account_name=f"企业{uscc[-4:]}",
                    source="snapshot",
                    created_at=t0,
                )
            )


def _ready(tx, tmp_path: Path, t0, uscc: str = A, rd: str = "2,000,000", p=None, known=KNOWN) -> str:
    """A submitted application of `uscc` with research expenses `rd` (subsidy: a tenth of it), `known` its
    prefilled values."""
    p = p or policy()
    with tx() as s:
        app = apps.open_application(s, p, "subsidy", uscc, known, t0)
        actor = f"enterprise:{uscc}"
        apps.save(
            s, p, app, given_answers={"projects": "3"}, given_fields={"rd_expense": rd}, actor=actor, now=t0
        )
        apps.upload(s, p, app, "audit", PDF, "审计报告.pdf", tmp_path / "evidence", actor=actor, now=t0)
        apps.submit(s, p, app, actor=actor, now=t0 + H)
        return app.public_id


def test_known_values_are_filled_in_with_their_source_and_date_and_cannot_be_typed_again(
    tx, t0, staff
) -> None:
    p = policy()
    with tx() as s:
        app = apps.open_application(s, p, "subsidy", A, KNOWN, t0)
        known = apps.prefilled(app)
        assert set(known) == {"serious_dishonest"}  # only what the form reads; employees is not asked
        assert known["serious_dishonest"].source == "发展和改革委员会（信用办）"
        assert known["serious_dishonest"].as_of == dt.date(2025, 5, 31)
        with pytest.raises(PayoutError, match="不需填写"):
            apps.save(
                s, p, app, given_answers={}, given_fields={"serious_dishonest": "否"}, actor="e", now=t0
            )
        # Opening again gives the same application, not a second one.
        assert apps.open_application(s, p, "subsidy", A, {}, t0).public_id == app.public_id


def test_submit_lists_everything_missing_at_once(tx, t0, staff) -> None:
    p = policy()
    with tx() as s:
        app = apps.open_application(s, p, "subsidy", A, KNOWN, t0)
        with pytest.raises(StateError) as e:
            apps.submit(s, p, app, actor="e", now=t0)
    message = str(e.value)
    for expected in ("请回答：在研项目数", "请填写：研发费用", "请上传：研发费用专项审计报告"):
        assert expected in message


def test_a_condition_the_values_fail_is_named_before_submission(tx, tmp_path, t0, staff) -> None:
    p = policy()
    with tx() as s:
        app = apps.open_application(s, p, "subsidy", A, KNOWN, t0)
        apps.save(
            s,
            p,
            app,
            given_answers={"projects": "1"},
            given_fields={"rd_expense": "500000"},
            actor="e",
            now=t0,
        )
        apps.upload(s, p, app, "audit", PDF, "a.pdf", tmp_path, actor="e", now=t0)
        assert apps.lacking(s, p, app) == ["不符合条件：上年度研发费用不少于100万元"]


def test_bad_answers_are_refused_with_what_is_expected(tx, t0, staff) -> None:
    p = policy()
    with tx() as s:
        app = apps.open_application(s, p, "subsidy", A, KNOWN, t0)
        with pytest.raises(PayoutError, match="“在研项目数”应为整数：三个"):
            apps.save(s, p, app, given_answers={"projects": "三个"}, given_fields={}, actor="e", now=t0)
        with pytest.raises(PayoutError, match="本事项没有问题 x"):
            apps.save(s, p, app, given_answers={"x": "1"}, given_fields={}, actor="e", now=t0)


def test_an_enterprise_never_sees_another_enterprises_application_or_materials(
    tx, tmp_path, t0, staff
) -> None:
    pid = _ready(tx, tmp_path, t0)
    with tx() as s:
        mine = apps.of_enterprise(s, A, pid)
        material = apps.materials(s, mine)[0]
        path, media, _ = apps.material_file(s, mine, material.public_id, tmp_path / "evidence")
        assert path.read_bytes() == PDF and media == "application/pdf"
        with pytest.raises(NotFoundError):
            apps.of_enterprise(s, B, pid)
        other = apps.open_application(s, policy(), "subsidy", B, KNOWN, t0)
        with pytest.raises(NotFoundError):
            apps.material_file(s, other, material.public_id, tmp_path / "evidence")
        # Staff of a department that does not review it do not find it either.
        with pytest.raises(NotFoundError):
            apps.for_department(s, "sw", pid)
        assert [a.public_id for a in apps.queue(s, "cz")] == [pid]
        assert apps.queue(s, "sw") == []


def test_joint_review_then_accept_gives_a_confirmed_offer_that_a_batch_pays(tx, tmp_path, t0, staff) -> None:
    pid = _ready(tx, tmp_path, t0, rd="2,345,678.90")
    p = policy()
    with tx() as s:
        assert apps.of_enterprise(s, A, pid).requested_amount == Decimal("234567.89")
        with pytest.raises(StateError, match="会签部门尚未提出意见：市财政局"):
            apps.accept(s, p, pid, amount=None, by="kj", now=t0 + 2 * H)
    with tx() as s:
        with pytest.raises(RoleError, match="只有牵头部门"):
            apps.reject(s, pid, "不符合", by="cz", now=t0 + 2 * H)
        apps.give_opinion(s, pid, agree=True, note=None, by="cz", now=t0 + 2 * H)
        offer = apps.accept(s, p, pid, amount=None, by="kj", now=t0 + 3 * H)
        assert (offer.state, offer.amount, offer.uscc, offer.match_run_id) == (
            "confirmed",
            Decimal("234567.89"),
            A,
            None,
        )
        app = apps.of_enterprise(s, A, pid)
        assert (app.state, app.offer_id) == ("accepted", offer.id)
    with tx() as s:
        batch = batches.create_batch(s, "ks-yanfa", "maker", t0 + 4 * H)
        lines = s.scalars(select(BatchLine).where(BatchLine.batch_id == batch.id)).all()
        assert [(line.amount, line.account_no) for line in lines] == [
            (Decimal("234567.89"), "6222000011112222")
        ]
        actions = [e.action for e in audit.history(s, "application", pid)]
        assert actions == [
            "apply_open",
            "apply_save",
            "apply_upload",
            "apply_submit",
            "apply_opinion",
            "apply_accept",
        ]
        assert audit.verify(s).ok


def test_the_department_sets_the_amount_within_the_computed_amount_and_the_cap(
    tx, tmp_path, t0, staff
) -> None:
    capped = _ready(tx, tmp_path, t0, rd="9,000,000")  # 900,000 by the formula, capped at 500,000
    pid = _ready(tx, tmp_path, t0, B, rd="3,000,000")
    p = policy()
    with tx() as s:
        assert apps.of_enterprise(s, A, capped).requested_amount == Decimal("500000.00")
        for x in (capped, pid):
            apps.give_opinion(s, x, agree=True, note=None, by="cz", now=t0 + H)
    with tx() as s, pytest.raises(PayoutError, match=r"核定金额500,000\.01元超过本事项上限500,000\.00元"):
        apps.accept(s, p, capped, amount=Decimal("500000.01"), by="kj", now=t0 + H)
    with tx() as s, pytest.raises(PayoutError, match=r"超过按政策计算的金额300,000\.00元"):
        apps.accept(s, p, pid, amount=Decimal("300000.01"), by="kj", now=t0 + H)
    with tx() as s:
        assert apps.accept(s, p, pid, amount=Decimal("250000.00"), by="kj", now=t0 + H).amount == Decimal(
            "250000.00"
        )


def test_an_accepted_application_never_takes_the_policy_past_its_budget(tx, tmp_path, t0, staff) -> None:
    p = policy("250000.00")
    first, second, third = (_ready(tx, tmp_path, t0, u, "1,000,000", p) for u in (A, B, "91430100MA4L00000X"))
    with tx() as s:
        for pid in (first, second, third):
            apps.give_opinion(s, pid, agree=True, note=None, by="cz", now=t0 + H)
    with tx() as s:
        apps.accept(s, p, first, amount=None, by="kj", now=t0 + H)
        apps.accept(s, p, second, amount=None, by="kj", now=t0 + H)
    with tx() as s, pytest.raises(BudgetError, match=r"剩余50,000\.00元，本申请100,000\.00元"):
        apps.accept(s, p, third, amount=None, by="kj", now=t0 + H)
    with tx() as s:
        assert apps.of_enterprise(s, "91430100MA4L00000X", third).state == "submitted"
        assert apps.committed(s, "ks-yanfa", "2025") == Decimal("200000.00")


def test_reviewers_accepting_at_once_never_pass_the_budget(tx, tmp_path, t0, staff) -> None:
    p = policy("350000.00")
    usccs = [f"91430100MA4L{n:04d}0X" for n in range(8)]
    ids = [_ready(tx, tmp_path, t0, u, "1,000,000", p) for u in usccs]
    with tx() as s:
        for pid in ids:
            apps.give_opinion(s, pid, agree=True, note=None, by="cz", now=t0 + H)

    def accept(k: int) -> str:
        with tx() as s:
            return apps.accept(s, p, ids[k], amount=None, by="kj", now=t0 + 2 * H).public_id

    accepted, errors = run_together(len(ids), accept)
    assert len(accepted) == 3 and all(isinstance(e, BudgetError) for e in errors) and len(errors) == 5
    with tx() as s:
        total = sum(o.amount for o in s.scalars(select(Offer).where(Offer.policy_id == "ks-yanfa")))
        assert total == Decimal("300000.00")


def test_return_for_correction_lists_everything_and_stops_the_clock_until_submitted_again(
    tx, tmp_path, t0, staff
) -> None:
    pid = _ready(tx, tmp_path, t0)
    p = policy()
    with tx() as s, pytest.raises(PayoutError, match="一次性列出"):
        apps.return_for_correction(s, pid, ["  "], by="kj", now=t0 + 2 * H)
    with tx() as s:
        apps.return_for_correction(
            s, pid, ["审计报告缺少盖章页", "在研项目数与附件不符"], by="kj", now=t0 + 2 * H
        )
        app = apps.of_enterprise(s, A, pid)
        assert app.state == "returned"
        [pause] = apps.returns(s, app)
        assert json.loads(pause.corrections) == ["审计报告缺少盖章页", "在研项目数与附件不符"]
        assert pause.resumed_at is None
        with pytest.raises(NotFoundError):  # a returned application is the enterprise's to correct
            apps.accept(s, p, pid, amount=None, by="sw", now=t0 + 2 * H)
    with tx() as s:
        app = apps.of_enterprise(s, A, pid)
        apps.save(
            s,
            p,
            app,
            given_answers={"projects": "2"},
            given_fields={},
            actor=f"enterprise:{A}",
            now=t0 + 5 * H,
        )
        apps.submit(s, p, app, actor=f"enterprise:{A}", now=t0 + 6 * H)
        assert apps.returns(s, app)[0].resumed_at == t0 + 6 * H
        assert app.submitted_at == t0 + H  # the first submission starts the clock


def test_reject_needs_a_reason_and_frees_the_item_for_a_new_application(tx, tmp_path, t0, staff) -> None:
    pid = _ready(tx, tmp_path, t0)
    with tx() as s, pytest.raises(PayoutError, match="请写明不予通过的理由"):
        apps.reject(s, pid, " ", by="kj", now=t0 + H)
    with tx() as s:
        app = apps.reject(s, pid, "研发费用归集不符合规定", by="kj", now=t0 + H)
        assert (app.state, app.reason) == ("rejected", "研发费用归集不符合规定")
        again = apps.open_application(s, policy(), "subsidy", A, KNOWN, t0 + 2 * H)
        assert again.public_id != pid
        assert s.scalar(select(Application).where(Application.public_id == pid)).state == "rejected"


def test_a_region_scoped_reviewer_sees_only_its_regions_applications(tx, tmp_path: Path, t0, staff) -> None:
    from payouts import departments

    p = policy()
    in_region = {**KNOWN, apps.REGION: Known("430102", "市场监督管理局", dt.date(2025, 5, 31))}
    elsewhere = {**KNOWN, apps.REGION: Known("430203", "市场监督管理局", dt.date(2025, 5, 31))}
    with tx() as s:
        users.create_user(s, "admin", "system_admin", now=t0)
        departments.place(s, "市财政局", level="city", region_code="430100", parent=None, by="admin", now=t0)
    mine = _ready(tx, tmp_path, t0, A, p=p, known=in_region)
    other = _ready(tx, tmp_path, t0, B, p=p, known=elsewhere)
    with tx() as s:
        app = apps.of_enterprise(s, A, mine)
        assert (app.region_code, apps.of_enterprise(s, B, other).region_code) == ("430102", "430203")
        assert "region_code" not in apps.prefilled(app)  # not a question of the form
        assert [a.public_id for a in apps.queue(s, "cz")] == [mine]  # 市财政局 placed in 长沙
        assert {a.public_id for a in apps.queue(s, "kj")} == {mine, other}  # unplaced
        with pytest.raises(NotFoundError):
            apps.for_department(s, "cz", other)


def test_a_county_bureau_reviews_its_own_enterprises_in_the_name_of_the_city_bureau_the_policy_names(
    tx, tmp_path: Path, t0, staff
) -> None:
    from payouts import departments

    p = policy()
    here = {**KNOWN, apps.REGION: Known("430102", "市场监督管理局", dt.date(2025, 5, 31))}
    there = {**KNOWN, apps.REGION: Known("430103", "市场监督管理局", dt.date(2025, 5, 31))}
    with tx() as s:
        users.create_user(s, "admin", "system_admin", now=t0)
        add = {"by": "admin", "now": t0}
        for city in ("市科学技术局", "市财政局"):
            departments.place(s, city, level="city", region_code="430100", parent=None, **add)
        departments.add(
            s, "芙蓉区科学技术局", level="county", region_code="430102", parent="市科学技术局", **add
        )
        departments.add(s, "芙蓉区财政局", level="county", region_code="430102", parent="市财政局", **add)
        departments.add(s, "天心区财政局", level="county", region_code="430103", parent="市财政局", **add)
        for name, dept in (
            ("kj_fr", "芙蓉区科学技术局"),
            ("cz_fr", "芙蓉区财政局"),
            ("cz_tx", "天心区财政局"),
        ):
            users.create_user(s, name, "reviewer", department=dept, now=t0)
    mine = _ready(tx, tmp_path, t0, A, p=p, known=here)
    other = _ready(tx, tmp_path, t0, B, p=p, known=there)
    with tx() as s:
        assert [a.public_id for a in apps.queue(s, "cz_fr")] == [mine]
        assert [a.public_id for a in apps.queue(s, "cz_tx")] == [other]
        assert [a.public_id for a in apps.queue(s, "sw")] == []  # another line: none
        with pytest.raises(NotFoundError):
            apps.for_department(s, "cz_fr", other)  # another county's: as if none
        with pytest.raises(NotFoundError):
            apps.give_opinion(s, other, agree=True, note=None, by="cz_fr", now=t0 + 2 * H)
        with pytest.raises(RoleError, match="只有牵头部门"):
            apps.reject(s, mine, "不符合", by="cz_fr", now=t0 + 2 * H)
        with pytest.raises(RoleError, match="不是该申请的会签部门"):
            apps.give_opinion(s, mine, agree=True, note=None, by="kj_fr", now=t0 + 2 * H)
        given = apps.give_opinion(s, mine, agree=True, note=None, by="cz_fr", now=t0 + 2 * H)
        assert given.department == "市财政局"  # in the name of the department the policy names
    with tx() as s:
        assert apps.waiting_opinions(s, apps.of_enterprise(s, A, mine)) == []
        offer = apps.accept(s, p, mine, amount=None, by="kj_fr", now=t0 + 3 * H)
        assert offer.state == "confirmed"
