"""SMS: the notice with its one-click link, reminders before expiry, the expiry sweep, gateways."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from payouts import confirm, sms, tokens
from payouts.db import PayoutSettings
from payouts.errors import LinkError, PayoutError, SmsError
from payouts.imports import import_run
from payouts.models import Offer, SmsMessage
from payouts.offers import release

DAY = dt.timedelta(days=1)


def test_notices_are_short_chinese_texts_with_a_link_whose_token_is_not_stored(tx, notified, t0) -> None:
    assert len(notified.phone.sent) == 4  # #1-#4; #5 has no account, #6 no phone
    for m in notified.phone.sent:
        assert len(m.text) <= sms.MAX_CHARS
        assert m.params["link"] in m.text and "元" in m.text and "确认" in m.text
    token = notified.links[1]
    assert len(token) >= 22  # 16 random bytes, URL-safe
    with tx() as s:
        rows = s.scalars(select(SmsMessage)).all()
        assert all(token not in r.text for r in rows)
        assert tokens.token_hash(token) in {r.token_hash for r in rows}
        o = s.scalars(select(Offer).where(Offer.state == "notified")).all()
        assert len(o) == 4 and all(x.deadline == t0 + 30 * DAY for x in o)


def test_a_long_title_is_shortened_but_never_the_link_or_the_amount(t0) -> None:
    text, params = sms.render(
        "notice",
        sign="惠企直达",
        name="某某市某某区某某某某科技股份有限公司" * 2,
        title="关于" + "支持" * 60 + "的若干政策",
        amount=Decimal("1234567.89"),
        deadline=t0,
        link="https://zd.example.gov.cn/c/" + "x" * 22,
        department="某某省某某市人力资源和社会保障局",
        phone="0731-88888888",
    )
    assert len(text) <= sms.MAX_CHARS
    assert params["link"] in text and "1,234,567.89元" in text and "…" in text
    assert "咨询0731-88888888" in text and text.endswith(params["link"])


def test_the_sms_names_the_department_and_a_phone_and_a_round_amount_in_wan(t0) -> None:
    text, _ = sms.render(
        "notice",
        sign="惠企直达",
        name="福州某某科技有限公司",
        title="福建省新认定国家级专精特新“小巨人”企业奖励",
        amount=Decimal("500000.00"),
        deadline=t0,
        link="https://zd.example.gov.cn/c/" + "x" * 22,
        department="福建省工业和信息化厅",
        phone="12345",
    )
    assert text.startswith("【惠企直达】福建省工业和信息化厅：福州某某科技有限公司符合")
    assert "可获50万元" in text and "无需提交材料" in text and "咨询12345" in text
    assert len(text) <= sms.MAX_CHARS


def test_reminders_go_out_3_and_1_days_before_the_deadline_once_each(tx, notified, settings, t0) -> None:
    deadline = t0 + 30 * DAY
    phone = sms.MemoryGateway()
    with tx() as s:
        assert sms.send_reminders(s, phone, deadline - 5 * DAY, settings).sent == 0
        assert sms.send_reminders(s, phone, deadline - 2.5 * DAY, settings).sent == 4
        assert sms.send_reminders(s, phone, deadline - 2 * DAY, settings).sent == 0
        assert sms.send_reminders(s, phone, deadline - 0.5 * DAY, settings).sent == 4
        assert sms.send_reminders(s, phone, deadline - 0.2 * DAY, settings).sent == 0
        kinds = sorted(m.kind for m in s.scalars(select(SmsMessage)).all())
    assert kinds == ["notice"] * 4 + ["reminder_1d"] * 4 + ["reminder_3d"] * 4
    # A reminder's own link works too, and expires with the offer.
    token = phone.sent[0].params["link"].removeprefix(settings.link_base)
    with tx() as s:
        assert confirm.view(s, token, deadline - DAY).can_respond


def test_expired_offers_are_swept_and_their_links_refused(tx, notified, t0) -> None:
    deadline = t0 + 30 * DAY
    with tx() as s:
        with pytest.raises(LinkError, match="过期"):
            confirm.confirm(s, notified.links[1], ip=None, user_agent=None, now=deadline)
        assert sms.expire_overdue(s, deadline - DAY) == 0
        assert sms.expire_overdue(s, deadline) == 4
        assert {o.state for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))} == {
            "expired",
            "held",
        }


def test_the_template_gateway_sends_template_parameters_and_keeps_refusals_for_a_retry(
    tx, small_run, settings, t0
) -> None:
    requests = []
    answers = iter(
        [{"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控"}] + [{"Code": "OK", "BizId": "b1"}] * 9
    )

    def transport(request: dict) -> dict:
        requests.append(request)
        return next(answers)

    gateway = sms.TemplateGateway(
        transport, sign_name="惠企直达", template_codes={"notice": "SMS_1", "reminder": "SMS_2"}
    )
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        release(s, "rev", t0)
        first = sms.send_notices(s, gateway, t0, settings)
    assert (first.sent, first.failed) == (3, 1) and "触发流控" in first.errors[0]
    params = json.loads(requests[0]["TemplateParam"])
    assert requests[0]["TemplateCode"] == "SMS_1" and params["link"].startswith(settings.link_base)
    with tx() as s:
        again = sms.send_notices(s, gateway, t0 + dt.timedelta(minutes=5), settings)
        assert (again.sent, again.failed) == (1, 0)
        retried = s.scalars(select(SmsMessage).where(SmsMessage.attempts == 2)).one()
        assert retried.status == "sent" and retried.provider_ref == "b1"


def test_the_outbox_gateway_echoes_every_message(tx, small_run, settings, t0) -> None:
    lines: list[str] = []
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        release(s, "rev", t0)
        sms.send_notices(s, sms.OutboxGateway(echo=lines.append), t0, settings)
        assert {m.gateway for m in s.scalars(select(SmsMessage)).all()} == {"outbox"}
    assert len(lines) == 4 and all(settings.link_base in line for line in lines)


def test_link_tokens_never_start_with_a_dash_so_the_cli_does_not_read_them_as_options() -> None:
    # One token in 64 would (URL-safe base64); 5,000 draws would all but surely show one.
    drawn = [tokens.derived_link_token(tokens.DEVELOPMENT_LINK_KEY, f"o{k}|1|notice|1") for k in range(5000)]
    assert not [t for t in drawn if t.startswith("-")]
    assert len(set(drawn)) == 5000 and {len(t) for t in drawn} == {22}


def test_the_template_gateway_refuses_a_kind_without_its_own_template() -> None:
    sent: list[dict] = []
    gateway = sms.TemplateGateway(
        lambda r: sent.append(r) or {"Code": "OK"}, sign_name="惠企直达", template_codes={"reminder": "SMS_2"}
    )
    alert = sms.OutgoingSms("13800000001", "login_alert", "【惠企直达】……", {"sign": "惠企直达", "name": "x"})
    with pytest.raises(SmsError, match="login_alert"):
        gateway.send(alert)
    assert sent == []  # never through the reminder's template
    gateway.send(sms.OutgoingSms("13800000001", "reminder_1d", "……", {}))
    assert sent[0]["TemplateCode"] == "SMS_2"


def test_production_refuses_the_public_development_link_key() -> None:
    # With the development key, anyone holding the database could build every open link.
    for env in ({"ZHIDA_ENV": "production"}, {"ZHIDA_ENV": "production", "ZHIDA_LINK_KEY": "short"}):
        with pytest.raises(PayoutError, match="ZHIDA_LINK_KEY"):
            PayoutSettings.from_env(env)
    key = "k" * 40
    assert PayoutSettings.from_env({"ZHIDA_ENV": "production", "ZHIDA_LINK_KEY": key}).link_key == key
    attempt = "0f3c9a1b2d4e5f607182|1|notice|1"
    assert tokens.derived_link_token(key, attempt) != tokens.derived_link_token(
        tokens.DEVELOPMENT_LINK_KEY, attempt
    )
