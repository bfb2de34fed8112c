"""Departments in a hierarchy and region-scoped staff: a county 人社局 reviews, selects and batches its own
enterprises of a policy of the province's 人社厅, and never sees, counts or acts on another county's."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from payouts import audit, batches, departments, imports, jointreview, offers, scope, users
from payouts.errors import NotFoundError, RoleError
from payouts.models import Offer, StaffUser
from payouts.selection import OfferFilter, Selection
from rules.errors import StateError
from tests.payouts.conftest import REGIONS, payee, policy, uscc, write_run

T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)
PROVINCE = "湖南省人力资源和社会保障厅"
CITY = "长沙市人力资源和社会保障局"
FURONG = "芙蓉区人力资源和社会保障局"
TIANXIN = "天心区人力资源和社会保障局"


def hierarchy(s: Any) -> None:
    users.create_user(s, "admin", "system_admin", now=T0)
    departments.add(s, PROVINCE, level="province", region_code="430000", parent=None, by="admin", now=T0)
    departments.add(s, CITY, level="city", region_code="430100", parent=PROVINCE, by="admin", now=T0)
    departments.add(s, FURONG, level="county", region_code="430102", parent=CITY, by="admin", now=T0)
    departments.add(s, TIANXIN, level="county", region_code="430103", parent=CITY, by="admin", now=T0)
    departments.add(
        s, "长沙市科学技术局", level="city", region_code="430100", parent=None, by="admin", now=T0
    )
    for name, role, dept in (
        ("rev_prov", "reviewer", PROVINCE),
        ("rev_furong", "reviewer", FURONG),
        ("rev_tianxin", "reviewer", TIANXIN),
        ("rev_sci", "reviewer", "长沙市科学技术局"),
        ("maker_furong", "finance_maker", FURONG),
        ("checker_tianxin", "finance_checker", TIANXIN),
        ("checker_prov", "finance_checker", PROVINCE),
    ):
        users.create_user(s, name, role, department=dept, now=T0)


@pytest.fixture
def imported(tx: Any, regional_run: Path) -> None:
    with tx() as s:
        hierarchy(s)
        imports.import_run(s, regional_run, "rev", T0)


def _ns(rows: Any) -> list[int]:
    return sorted(int(u[8:17]) for u in rows)


def _seen(s: Any, username: str) -> list[int]:
    mine = scope.of_username(s, username)
    return _ns(s.scalars(select(Offer.uscc).where(mine.offers())))


def test_the_import_keeps_each_enterprises_region(tx: Any, imported: None) -> None:
    with tx() as s:
        got = dict(s.execute(select(Offer.uscc, Offer.region_code)).all())
    assert got == {uscc(n): code for n, code in REGIONS.items()}


def test_a_county_sees_its_own_enterprises_of_the_provinces_policy_the_province_its_whole_province(
    tx: Any, imported: None
) -> None:
    with tx() as s:
        assert _seen(s, "rev_furong") == [1, 2]
        assert _seen(s, "rev_tianxin") == [3, 4]
        assert _seen(s, "rev_prov") == [1, 2, 3, 4, 5]  # not 广州's
        assert _seen(s, "rev") == [1, 2, 3, 4, 5, 6]  # no department: every region
        assert _seen(s, "rev_sci") == []  # another line (科技): not its policy
        listed = offers.list_offers(s, within=scope.of_username(s, "rev_furong"))
        assert _ns(o.uscc for o in listed) == [1, 2]


def test_a_county_reviewers_preview_and_release_count_and_change_only_its_own(
    tx: Any, imported: None
) -> None:
    everything = Selection(filter=OfferFilter(policy_id="wengang"))
    with tx() as s:
        seen = offers.preview_action(s, everything, "release", by="rev_furong")
        assert (seen.tally.count, seen.tally.total) == (2, 3000)
        done = offers.release(s, "rev_furong", T0, selection=everything, expected=seen.tally)
        assert done.tally.count == 2
    with tx() as s:
        states = dict(s.execute(select(Offer.uscc, Offer.state)).all())
    assert [n for n in REGIONS if states[uscc(n)] == "confirmed"] == [1, 2]


def test_a_county_reviewer_cannot_act_on_another_countys_offer_by_its_id(tx: Any, imported: None) -> None:
    with tx() as s:
        other = s.scalar(select(Offer.public_id).where(Offer.uscc == uscc(3)))
        with pytest.raises(NotFoundError, match=other):
            offers.hold(s, [other], "核实", "rev_furong", T0)
        with pytest.raises(NotFoundError, match=other):
            offers.release(s, "rev_furong", T0, public_ids=[other])
    with tx() as s:
        assert s.scalar(select(Offer.state).where(Offer.public_id == other)) == "drafted"


def test_an_offer_whose_region_is_unknown_is_seen_by_no_region_scoped_user(tx: Any, imported: None) -> None:
    with tx() as s:
        s.execute(update(Offer).where(Offer.uscc == uscc(1)).values(region_code=None))
    with tx() as s:
        assert _seen(s, "rev_furong") == [2]
        assert _seen(s, "rev_prov") == [2, 3, 4, 5]
        assert 1 in _seen(s, "rev")


def test_a_county_makers_batch_holds_its_own_enterprises_and_other_counties_never_see_it(
    tx: Any, imported: None
) -> None:
    with tx() as s:
        offers.release(s, "rev", T0)  # every offer confirmed (the policy needs no confirmation)
        made = batches.create_batches(s, "wengang", "maker_furong", T0)
        assert [(b.line_count, b.total, b.region) for b in made] == [(2, 3000, "430102")]
        ref = made[0].reference
        assert [b.reference for b in batches.batches(s, within=scope.of_username(s, "checker_tianxin"))] == []
        with pytest.raises(NotFoundError, match=ref):
            batches.approve(s, ref, "checker_tianxin", T0)
        batches.approve(s, ref, "checker_prov", T0)  # the province sees its counties' batches
        in_batch = s.scalar(select(func.count()).where(Offer.state == "in_batch"))
        assert in_batch == 2


def test_a_county_maker_cannot_batch_another_countys_offer(tx: Any, imported: None) -> None:
    with tx() as s:
        offers.release(s, "rev", T0)
        other = s.scalar(select(Offer.public_id).where(Offer.uscc == uscc(3)))
        with pytest.raises(NotFoundError, match=other):
            batches.create_batches(s, "wengang", "maker_furong", T0, public_ids=[other])


def test_a_department_carried_over_by_name_keeps_seeing_every_region(tx: Any, imported: None) -> None:
    with tx() as s:
        users.create_user(s, "legacy", "reviewer", department=PROVINCE + "（旧）", carry_over=True, now=T0)
        users.create_user(s, "old_prov", "reviewer", department=PROVINCE, now=T0)
        row = s.scalar(select(StaffUser).where(StaffUser.username == "legacy"))
        assert row.department_id is not None
        assert scope.of_username(s, "legacy").region is None


def test_users_get_a_department_that_exists_and_departments_must_fit_their_superior(tx: Any) -> None:
    with tx() as s:
        hierarchy(s)
        with pytest.raises(NotFoundError, match="zhida departments add"):
            users.create_user(s, "x", "reviewer", department="岳麓区人力资源和社会保障局", now=T0)
        with pytest.raises(RoleError, match="不包含"):  # 株洲's county under 长沙's bureau
            departments.add(
                s, "芦淞区人社局", level="county", region_code="430203", parent=CITY, by="admin", now=T0
            )
        with pytest.raises(RoleError, match="不是县级的代码"):
            departments.add(
                s, "某县人社局", level="county", region_code="430100", parent=CITY, by="admin", now=T0
            )
        with pytest.raises(RoleError, match="不在 GB/T 2260"):
            departments.add(
                s, "某县人社局", level="county", region_code="439999", parent=CITY, by="admin", now=T0
            )
        with pytest.raises(RoleError, match="高于"):
            departments.add(
                s, "某厅", level="province", region_code="430000", parent=CITY, by="admin", now=T0
            )
        with pytest.raises(RoleError, match="系统管理员"):
            departments.add(s, "某局", level="city", region_code="430100", parent=None, by="rev", now=T0)


@pytest.fixture
def joint(tx: Any, tmp_path: Path) -> None:
    """The province's policy reviewed jointly by its 人社厅 (the lead) and the province's 财政厅."""
    entry = {
        **policy("wengang", budget=None, confirmation="none"),
        "department": PROVINCE,
        "reviewers": [PROVINCE, "湖南省财政厅"],
    }
    run = write_run(
        tmp_path / "joint",
        [entry],
        [("wengang", "main", n, f"{n}000.00") for n in (1, 2, 3)],
        [{**payee(n), "region_code": REGIONS[n]} for n in (1, 2, 3)],
    )
    with tx() as s:
        hierarchy(s)
        departments.add(
            s, "湖南省财政厅", level="province", region_code="430000", parent=None, by="admin", now=T0
        )
        departments.add(
            s, "芙蓉区财政局", level="county", region_code="430102", parent="湖南省财政厅", by="admin", now=T0
        )
        users.create_user(s, "fin_furong", "reviewer", department="芙蓉区财政局", now=T0)
        imports.import_run(s, run, "rev", T0)


def test_in_joint_review_the_lead_decides_only_once_every_co_reviewer_gave_its_opinion(
    tx: Any, joint: None
) -> None:
    everything = Selection(filter=OfferFilter(policy_id="wengang"))
    with tx() as s:
        ids = {int(u[8:17]): p for u, p in s.execute(select(Offer.uscc, Offer.public_id)).all()}
        assert offers.preview_action(s, everything, "release", by="rev_furong").tally.count == 0
        assert offers.release(s, "rev_furong", T0, selection=everything).tally.count == 0
        with pytest.raises(StateError, match="会签"):
            offers.release(s, "rev_furong", T0, public_ids=[ids[1]])
        assert _seen(s, "fin_furong") == [1, 2]  # the co-reviewer sees its county's offers ...
        with pytest.raises(NotFoundError):  # ... but does not decide on them
            offers.release(s, "fin_furong", T0, public_ids=[ids[1]])
        with pytest.raises(NotFoundError):  # nor gives an opinion outside its county
            jointreview.give(s, [ids[3]], agree=True, note="", by="fin_furong", now=T0)
        with pytest.raises(StateError, match="理由"):
            jointreview.give(s, [ids[2]], agree=False, note=" ", by="fin_furong", now=T0)
        jointreview.give(s, [ids[1]], agree=True, note="", by="fin_furong", now=T0)
        jointreview.give(s, [ids[2]], agree=False, note="资金来源待落实", by="fin_furong", now=T0)
        with pytest.raises(RoleError, match="已出具意见"):
            jointreview.give(s, [ids[1]], agree=True, note="", by="fin_furong", now=T0)
        with pytest.raises(RoleError, match="不是该政策的会签部门"):
            jointreview.give(s, [ids[1]], agree=True, note="", by="rev_furong", now=T0)
    with tx() as s:
        seen = offers.preview_action(s, everything, "release", by="rev_furong")
        assert (seen.tally.count, seen.tally.total) == (2, 3000)
        offers.release(s, "rev_furong", T0, selection=everything, expected=seen.tally)
        states = {int(u[8:17]): st for u, st in s.execute(select(Offer.uscc, Offer.state)).all()}
        assert states == {1: "confirmed", 2: "confirmed", 3: "drafted"}
        history = audit.history(s, "offer", ids[2])
        opinion = next(e for e in history if e.action == "review_opinion")
        assert (opinion.actor, opinion.reason) == ("fin_furong", "资金来源待落实")
        assert json.loads(opinion.data)["department"] == "湖南省财政厅"


def test_migration_0018_gives_every_department_name_users_had_a_department(tmp_path: Path) -> None:
    from sqlalchemy import text

    from payouts.db import make_engine, migrate, transaction

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0017")
    with engine.begin() as conn:
        for name, dept in (("hr1", CITY), ("hr2", CITY), ("sci", "长沙市科学技术局"), ("all", None)):
            conn.execute(
                text(
                    "INSERT INTO staff_user (username, display_name, role, department, active, created_at, "
                    "head, failed_logins) VALUES (:u, :u, 'reviewer', :d, 1, '2025-06-01 00:00:00', 0, 0)"
                ),
                {"u": name, "d": dept},
            )
    migrate(engine)
    with transaction(engine) as s:
        rows = {u.username: u for u in s.scalars(select(StaffUser))}
        assert rows["hr1"].department_id == rows["hr2"].department_id is not None
        assert rows["all"].department_id is None
        dept = departments.get(s, CITY)
        assert (dept.level, dept.region_code) == (None, None)  # not yet placed: every region, as before
        assert scope.of(s, rows["hr1"]).region is None
        assert scope.of(s, rows["hr1"]).departments == frozenset({CITY})
    engine.dispose()


def test_a_county_reviews_its_own_enterprises_of_a_national_policy_issued_jointly(
    tx: Any, tmp_path: Path
) -> None:
    entry = {**policy("wengang", budget=None), "department": "人力资源社会保障部 财政部 国家税务总局"}
    run = write_run(
        tmp_path / "national",
        [entry],
        [("wengang", "main", n, f"{n}000.00") for n in REGIONS],
        [{**payee(n), "region_code": code} for n, code in REGIONS.items()],
    )
    with tx() as s:
        hierarchy(s)
        imports.import_run(s, run, "rev", T0)
        assert _seen(s, "rev_furong") == []  # its line does not reach the ministry yet
        departments.add(
            s, "人力资源社会保障部", level="national", region_code=None, parent=None, by="admin", now=T0
        )
        departments.place(
            s,
            PROVINCE,
            level="province",
            region_code="430000",
            parent="人力资源社会保障部",
            by="admin",
            now=T0,
        )
        assert _seen(s, "rev_furong") == [1, 2]
        assert _seen(s, "rev_prov") == [1, 2, 3, 4, 5]
        assert _seen(s, "rev_sci") == []
