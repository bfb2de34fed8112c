"""Applications (快申快享) through the service: the enterprise opens one from the policy page with the data
filled in, fills in the rest, submits; nobody else sees it; accepted, it is batched like any offer."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.auth import set_password
from api.enterprise_auth import ENTERPRISE_COOKIE
from payouts import users
from payouts.audit import history
from payouts.db import transaction
from payouts.models import Offer
from portal import applications as apps
from tests.api.conftest import PASSWORD, World, csrf_of

A = "913208038HQ7FMGPQ2"  # has a registered account and a phone in the conformance world
B = "9132080382J9AR2NCK"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

POLICY = """\
id: ks-chuangxin
version: 1
title: 科技创新券补助
department: 市科学技术局
source: {document: 测试用例，非真实文件}
valid_from: 2025-01-01
valid_to: 2030-12-31
assessment_year: 2024
period: "2026"
budget: 500000.00
kind: 奖补
guide:
  phone: "0731-88888888"
  department_address: 市政务服务中心二楼科技窗口
  time_limit_days: 20
  flow: [网上申请, 部门审核, 资金拨付]
reviewers: [市科学技术局, 市财政局]
conditions:
  - {id: honest, text: 未被列入严重失信主体名单, rule: not serious_dishonest}
items:
  - id: voucher
    title: 创新券补助
    mode: apply
    amount: rd_expense * 10
    cap: 200000.00
    application:
      fields: [rd_expense]
      questions:
        - {id: projects, text: 在研项目数, type: integer}
        - {id: area, text: 所属技术领域, type: choice, choices: [电子信息, 生物医药]}
      materials:
        - {id: contract, name: 技术服务合同}
"""


def publish(w: World) -> None:
    """Publish ks-chuangxin and add the co-reviewing department's staff (once per world)."""
    now = dt.datetime.now(dt.UTC)
    store = w.app.state.store
    if store.latest_published("ks-chuangxin") is not None:
        return
    with transaction(w.app.state.engine) as s:
        record, _ = store.upload(s, POLICY.encode(), "ks-chuangxin.yaml", "policy_sci", None, now)
        store.publish(s, record, "policy_sci", now)
        users.create_user(s, "finance_dept", "reviewer", department="市财政局", carry_over=True, now=now)
        set_password(s, "finance_dept", PASSWORD, "system", now)


def enterprise(w: World, uscc: str) -> TestClient:
    client = TestClient(w.app)
    client.cookies.set(ENTERPRISE_COOKIE, w.app.state.enterprise_tokens.session(uscc, "sms"))
    return client


def open_application(client: TestClient) -> str:
    start = client.get("/e/apply/ks-chuangxin/voucher")
    assert start.status_code == 200, start.text
    assert "20 个工作日" in start.text and "市政务服务中心二楼科技窗口" in start.text
    opened = client.post(
        "/e/apply/ks-chuangxin/voucher", data={"csrf": csrf_of(start.text)}, follow_redirects=False
    )
    assert opened.status_code == 303, opened.text
    return opened.headers["location"].rsplit("/", 1)[1]


def test_the_policy_page_offers_to_apply_and_the_form_shows_what_the_data_knows(world: World) -> None:
    publish(world)
    page = world.client.get("/policies/ks-chuangxin")
    assert 'href="/e/apply/ks-chuangxin/voucher"' in page.text
    client = enterprise(world, A)
    home = client.get("/e").text
    assert 'href="/e/apply/ks-chuangxin/voucher"' in home.split('id="applyable"')[1]
    pid = open_application(client)
    form = client.get(f"/e/applications/{pid}").text
    rd = re.search(r'data-field="rd_expense">(.*?)</div>', form, re.S)
    assert rd, form
    assert "不需再填" in rd.group(1) and "来源：税务局，2025年9月30日" in rd.group(1)
    assert 'name="f_rd_expense"' not in form  # a known value is not typed again


def test_an_enterprise_never_sees_another_enterprises_application_or_material(world: World) -> None:
    publish(world)
    mine = enterprise(world, A)
    pid = open_application(mine)
    page = mine.get(f"/e/applications/{pid}")
    up = mine.post(
        f"/e/applications/{pid}/materials",
        data={"csrf": csrf_of(page.text), "material_id": "contract"},
        files={"file": ("合同.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert up.status_code == 303
    material = re.search(rf"/e/applications/{pid}/materials/(\w+)", mine.get(f"/e/applications/{pid}").text)
    assert material
    assert mine.get(f"/e/applications/{pid}/materials/{material.group(1)}").content == PDF
    other = enterprise(world, B)
    assert other.get(f"/e/applications/{pid}").status_code == 404
    assert other.get(f"/e/applications/{pid}/materials/{material.group(1)}").status_code == 404
    token = csrf_of(other.get("/e/applications").text)  # its own valid token, for someone else's application
    assert other.post(f"/e/applications/{pid}", data={"csrf": token, "a_projects": "9"}).status_code == 404
    assert other.get("/e/applications/nonexistent").status_code == 404


def test_submit_refused_with_everything_missing_then_accepted_and_batched(world: World) -> None:
    publish(world)
    client = enterprise(world, A)
    pid = open_application(client)
    page = client.get(f"/e/applications/{pid}")
    refused = client.post(f"/e/applications/{pid}", data={"csrf": csrf_of(page.text), "do": "submit"})
    assert refused.status_code == 422
    assert "请回答：在研项目数；请回答：所属技术领域；请上传：技术服务合同" in refused.text
    client.post(
        f"/e/applications/{pid}/materials",
        data={"csrf": csrf_of(page.text), "material_id": "contract"},
        files={"file": ("合同.pdf", PDF, "application/pdf")},
    )
    done = client.post(
        f"/e/applications/{pid}",
        data={"csrf": csrf_of(page.text), "a_projects": "3", "a_area": "电子信息", "do": "submit"},
    )
    assert done.status_code == 200 and "申请已提交" in done.text
    assert "承诺时限 20 个工作日，已用 0 个工作日" in done.text
    policy = world.app.state.store.parsed(world.app.state.store.latest_published("ks-chuangxin"))
    now = dt.datetime.now(dt.UTC)
    with transaction(world.app.state.engine) as s:
        apps.give_opinion(s, pid, agree=True, note=None, by="finance_dept", now=now)
        offer = apps.accept(s, policy, pid, amount=None, by="policy_sci", now=now)
        assert offer.amount == Decimal("126282.60")  # 12,628.26 × 10, under the cap
    accepted = client.get(f"/e/applications/{pid}")
    assert "审核通过" in accepted.text and "126,282.60" in accepted.text
    offer_page = client.get(re.search(r'href="(/e/offers/\w+)" id="offer-link"', accepted.text).group(1))
    assert "申请审核通过，资金已核定" in offer_page.text and "申请即视为确认" in offer_page.text
    assert "等待财政部门制单拨付" in offer_page.text
    batch = world.make_batch("ks-chuangxin")
    assert batch.status_code in (200, 201), batch.text
    with transaction(world.app.state.engine) as s:
        assert s.scalar(select(Offer.state).where(Offer.policy_id == "ks-chuangxin")) == "in_batch"


def submitted(w: World) -> tuple[TestClient, str]:
    """Enterprise A's application, answered, with its material, submitted."""
    client = enterprise(w, A)
    pid = open_application(client)
    token = csrf_of(client.get(f"/e/applications/{pid}").text)
    client.post(
        f"/e/applications/{pid}/materials",
        data={"csrf": token, "material_id": "contract"},
        files={"file": ("合同.pdf", PDF, "application/pdf")},
    )
    done = client.post(
        f"/e/applications/{pid}",
        data={"csrf": token, "a_projects": "3", "a_area": "电子信息", "do": "submit"},
    )
    assert "申请已提交" in done.text
    return client, pid


def test_departments_review_jointly_return_for_correction_and_the_lead_accepts(world: World) -> None:
    publish(world)
    client, pid = submitted(world)
    lead, co = world.browser("policy_sci"), world.browser("finance_dept")
    queue = lead.get("/console/applications").text
    assert pid in queue and 'data-light="green"' in queue and "0/20" in queue and "待市财政局" in queue
    assert pid not in world.browser("policy_hr").get("/console/applications").text
    assert world.browser("policy_hr").get(f"/console/applications/{pid}").status_code == 404
    page = lead.get(f"/console/applications/{pid}")
    assert "来源" in page.text and "税务局，2025年9月30日" in page.text
    material = re.search(rf"/console/applications/{pid}/materials/(\w+)", page.text)
    assert material and lead.get(material.group(0)).content == PDF
    # Returned for correction with everything at once; the enterprise sees the list and the clock stops.
    r = lead.post(
        f"/console/applications/{pid}/return",
        data={"csrf": csrf_of(page.text), "corrections": "合同缺少盖章页\n在研项目数与附件不符"},
    )
    assert "已退回补正" in r.text
    mine = client.get(f"/e/applications/{pid}").text
    assert "合同缺少盖章页" in mine and "在研项目数与附件不符" in mine and "补正中，计时暂停" in mine
    token = csrf_of(mine)
    client.post(
        f"/e/applications/{pid}",
        data={"csrf": token, "a_projects": "2", "a_area": "电子信息", "do": "submit"},
    )
    # The lead cannot decide before the co-reviewer's opinion.
    page = lead.get(f"/console/applications/{pid}")
    refused = lead.post(
        f"/console/applications/{pid}/accept", data={"csrf": csrf_of(page.text), "amount": ""}
    )
    assert "会签部门尚未提出意见：市财政局" in refused.text
    co_page = co.get(f"/console/applications/{pid}")
    assert 'id="accept"' not in co_page.text  # only the lead decides
    co.post(
        f"/console/applications/{pid}/opinion",
        data={"csrf": csrf_of(co_page.text), "agree": "yes", "note": "资金来源已落实"},
    )
    accepted = lead.post(
        f"/console/applications/{pid}/accept", data={"csrf": csrf_of(page.text), "amount": "100,000.00"}
    )
    assert "审核通过，核定金额 100,000.00 元" in accepted.text
    assert "审核通过" in client.get(f"/e/applications/{pid}").text
    with transaction(world.app.state.engine) as s:
        actions = [e.action for e in history(s, "application", pid)]
    assert actions[-6:] == [
        "apply_view_material",
        "apply_return",
        "apply_save",
        "apply_submit",
        "apply_opinion",
        "apply_accept",
    ]


QUALIFICATION = """\
id: ks-test-zizhi
version: 1
title: 科技型中小企业评价入库
department: 市科学技术局
source: {document: 测试用例，非真实文件}
valid_from: 2025-01-01
valid_to: 2030-12-31
assessment_year: 2024
period: "2026"
kind: 资质
summary: 符合条件的科技型中小企业自主评价、入库登记
guide:
  phone: "0731-88888888"
  department_address: 市政务服务中心二楼科技窗口
  time_limit_days: 10
  flow: [网上填报, 部门审核, 公示入库]
"""


def test_a_qualification_is_listed_with_its_guide_and_never_matched(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    store = world.app.state.store
    with transaction(world.app.state.engine) as s:
        record, policy = store.upload(
            s, QUALIFICATION.encode(), "ks-test-zizhi.yaml", "policy_sci", None, now
        )
        store.publish(s, record, "policy_sci", now)
    assert policy.matchable() is None
    listed = world.client.get("/policies", params={"q": "科技型中小企业评价"})
    assert "ks-test-zizhi" in listed.text
    page = world.client.get("/policies/ks-test-zizhi").text
    assert (
        "资质类事项，不发放资金" in page
        and "10 个工作日" in page
        and "网上填报 → 部门审核 → 公示入库" in page
    )
    assert "单户金额" not in page and "/e/apply/" not in page


def test_a_poor_rating_of_a_rejected_application_is_answered_and_the_answer_shown(world: World) -> None:
    publish(world)
    client, pid = submitted(world)
    lead = world.browser("policy_sci")
    page = lead.get(f"/console/applications/{pid}")
    lead.post(
        f"/console/applications/{pid}/reject", data={"csrf": csrf_of(page.text), "reason": "合同非本年度签订"}
    )
    mine = client.get(f"/e/applications/{pid}").text
    assert "未通过。理由：合同非本年度签订" in mine and 'id="rate"' in mine
    refused = client.post(
        "/e/ratings",
        data={
            "csrf": csrf_of(mine),
            "subject": "application",
            "subject_id": pid,
            "score": "1",
            "comment": "",
        },
    )
    assert "请写明不满意的原因" in refused.text
    client.post(
        "/e/ratings",
        data={
            "csrf": csrf_of(mine),
            "subject": "application",
            "subject_id": pid,
            "score": "1",
            "comment": "理由未提前告知",
        },
    )
    other = enterprise(world, B)
    token = csrf_of(other.get("/e/applications").text)
    stolen = other.post(
        "/e/ratings", data={"csrf": token, "subject": "application", "subject_id": pid, "score": "5"}
    )
    assert stolen.status_code == 404
    listed = lead.get("/console/ratings").text
    assert "理由未提前告知" in listed and "待答复" in listed and "最迟" in listed
    assert "理由未提前告知" not in world.browser("policy_hr").get("/console/ratings").text
    rating_id = re.search(r"/console/ratings/(\w+)/answer", listed).group(1)
    lead.post(
        f"/console/ratings/{rating_id}/answer",
        data={"csrf": csrf_of(listed), "text": "已改进：申报通知列明合同年度要求"},
    )
    shown = client.get(f"/e/applications/{pid}").text
    assert "非常不满意" in shown and "市科学技术局答复：已改进：申报通知列明合同年度要求" in shown


def test_an_agent_applies_for_an_enterprise_on_its_mandate_and_the_enterprise_sees_it(world: World) -> None:
    publish(world)
    now = dt.datetime.now(dt.UTC)
    with transaction(world.app.state.engine) as s:
        users.create_user(s, "agent1", "agent", now=now)
        set_password(s, "agent1", PASSWORD, "system", now)
    agent = world.browser("agent1")
    page = agent.get("/console/agency")
    assert page.status_code == 200 and "登记委托书" in page.text
    token = csrf_of(page.text)
    # Without a mandate for B, nothing of B's can be opened.
    assert (
        agent.post(f"/console/agency/{B}/apply/ks-chuangxin/voucher", data={"csrf": token}).status_code == 404
    )
    bad = agent.post(
        "/console/agency/mandates",
        data={"csrf": token, "uscc": B},
        files={"file": ("委托书.txt", b"hello", "text/plain")},
    )
    assert "只能是 PDF 或图片" in bad.text
    agent.post(
        "/console/agency/mandates",
        data={"csrf": token, "uscc": B},
        files={"file": ("委托书.pdf", PDF, "application/pdf")},
    )
    opened = agent.post(
        f"/console/agency/{B}/apply/ks-chuangxin/voucher", data={"csrf": token}, follow_redirects=False
    )
    assert opened.status_code == 303
    url = opened.headers["location"]
    pid = url.rsplit("/", 1)[1]
    form = agent.get(url)
    assert "不需再填" in form.text
    agent.post(
        f"{url}/materials",
        data={"csrf": token, "material_id": "contract"},
        files={"file": ("合同.pdf", PDF, "application/pdf")},
    )
    done = agent.post(url, data={"csrf": token, "a_projects": "1", "a_area": "生物医药", "do": "submit"})
    assert "申请已提交" in done.text
    # The enterprise sees who acted for it, and the audit names the agent.
    seen = enterprise(world, B).get(f"/e/applications/{pid}").text
    assert "由帮办代办工作人员 agent1（委托书 委托书.pdf" in seen and "审核中" in seen
    with transaction(world.app.state.engine) as s:
        actors = {e.actor for e in history(s, "application", pid)}
    assert actors == {"agent:agent1"}
    # Another enterprise's application stays out of the agent's reach.
    mine = open_application(enterprise(world, A))
    assert agent.get(f"/console/agency/applications/{mine}").status_code == 404
