"""Notices sent in chunks, each committed before the next: a crash never makes a message go out twice."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from payouts import audit, confirm, offers, sms
from payouts.db import transaction
from payouts.imports import import_run
from payouts.models import AuditEvent, Offer, SmsMessage

N = 11


@dataclass
class CrashingGateway(sms.MemoryGateway):
    """A phone network that takes messages until the process dies while handing over the `crash_at`-th."""

    crash_at: int = 0

    def send(self, message: sms.OutgoingSms) -> str:
        if len(self.sent) + 1 == self.crash_at:
            raise RuntimeError("进程中断")
        return super().send(message)


def _released(engine: Engine, ex, tmp_path: Path) -> None:
    run = ex.write_run(
        tmp_path / "run",
        [ex.policy("p", budget=None)],
        [("p", "main", k, "100.00") for k in range(1, N + 1)],
        [ex.payee(k) for k in range(1, N + 1)],
    )
    with transaction(engine) as s:
        import_run(s, run, "rev", ex.T0)
        offers.release(s, "rev", ex.T0)


def test_chunks_are_committed_as_they_go_and_a_crash_never_sends_a_message_twice(
    engine: Engine, ex, tmp_path: Path, settings
) -> None:
    _released(engine, ex, tmp_path)
    provider = CrashingGateway(crash_at=6)
    with pytest.raises(RuntimeError, match="进程中断"):
        sms.send_notices_in_chunks(engine, provider, ex.T0, settings, chunk=4)
    with transaction(engine) as s:
        # Chunk 1 (4) committed; chunk 2: the 5th sent, the 6th in the gateway's hands when it died
        # (unknown: kept `sending`), the 7th and 8th released for a retry; the last 3 not claimed yet.
        assert Counter(s.scalars(select(SmsMessage.status)).all()) == {"sent": 5, "sending": 1, "failed": 2}
        assert Counter(s.scalars(select(Offer.state)).all()) == {"notified": 5, "released": N - 5}
        # One bulk audit event per chunk.
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "notify")).all()) == 2
    provider.crash_at = 0
    result = sms.send_notices_in_chunks(engine, provider, ex.T0 + dt.timedelta(minutes=5), settings, chunk=4)
    # The unknown one is handed over again (the provider never took it), the refused ones retried.
    assert (result.sent, result.failed) == (N - 5, 0)
    phones = [m.phone for m in provider.sent]
    assert len(phones) == len(set(phones)) == N and not provider.duplicates
    assert sms.send_notices_in_chunks(engine, provider, ex.T0, settings).sent == 0
    with transaction(engine) as s:
        assert Counter(s.scalars(select(SmsMessage.status)).all()) == {"sent": N}
        retried = s.scalars(select(SmsMessage).where(SmsMessage.attempts == 2)).all()
        assert len(retried) == 2 and {m.status for m in retried} == {"sent"}
        # Every link sent works, the one sent just before the crash included.
        for m in (provider.sent[4], provider.sent[5]):
            token = m.params["link"].removeprefix(settings.link_base)
            assert not confirm.confirm(
                s, token, ip=None, user_agent=None, now=ex.T0 + dt.timedelta(hours=1)
            ).repeated
        assert audit.verify(s).ok


@dataclass
class DyingGateway(sms.MemoryGateway):
    """A provider that takes the `die_at`-th message, after which the sending process dies before it
    records anything: the message went out, the outbox row still says `sending`."""

    die_at: int = 0

    def send(self, message: sms.OutgoingSms) -> str:
        ref = super().send(message)
        if len(self.sent) == self.die_at:
            raise SystemExit("进程被杀死")
        return ref


def test_a_notice_cut_short_after_the_provider_took_it_is_sent_again_with_its_key_and_kept_once(
    engine: Engine, ex, tmp_path: Path, settings
) -> None:
    _released(engine, ex, tmp_path)
    provider = DyingGateway(die_at=3)
    with pytest.raises(SystemExit):
        sms.send_notices_in_chunks(engine, provider, ex.T0, settings, chunk=4)
    taken = provider.sent[2]
    with transaction(engine) as s:
        stuck = s.scalars(select(SmsMessage).where(SmsMessage.status == sms.SENDING)).one()
        assert stuck.phone == taken.phone
    provider.die_at = 0
    later = ex.T0 + dt.timedelta(days=2)  # the next call, days later: the message is sent as it was
    result = sms.send_notices_in_chunks(engine, provider, later, settings, chunk=4)
    assert (result.sent, result.failed) == (N - 2, 0)
    # The provider got the copy under the first one's key and dropped it: the enterprise has one SMS.
    assert [(d.key, d.text) for d in provider.duplicates] == [(taken.key, taken.text)]
    assert [m.phone for m in provider.sent].count(taken.phone) == 1
    with transaction(engine) as s:
        assert Counter(s.scalars(select(SmsMessage.status)).all()) == {"sent": N}
        offer = s.get(Offer, stuck.offer_id)
        assert offer is not None and offer.deadline == stuck.expires_at  # the date the SMS states
        # The link in the one SMS the enterprise holds works.
        token = taken.params["link"].removeprefix(settings.link_base)
        assert not confirm.confirm(s, token, ip=None, user_agent=None, now=later).repeated
        assert audit.verify(s).ok


def test_the_template_gateway_gives_the_provider_the_idempotency_key_of_the_attempt(
    engine: Engine, ex, tmp_path: Path, settings
) -> None:
    requests: list[dict] = []
    gateway = sms.TemplateGateway(
        transport=lambda r: requests.append(r) or {"Code": "OK", "BizId": "b"},
        sign_name="惠企直达",
        template_codes={"notice": "SMS_1", "reminder": "SMS_2"},
    )
    _released(engine, ex, tmp_path)
    sms.send_notices_in_chunks(engine, gateway, ex.T0, settings, chunk=4)
    keys = [r["OutId"] for r in requests]
    assert len(keys) == len(set(keys)) == N and all(len(k) == 32 for k in keys)
    # The key is not the link's token: a provider's log of keys opens nothing.
    links = [json.loads(r["TemplateParam"])["link"] for r in requests]
    assert not any(r["OutId"] in link for r, link in zip(requests, links, strict=True))


def test_a_limit_and_refusals_are_kept_for_the_next_call(
    engine: Engine, ex, tmp_path: Path, settings
) -> None:
    _released(engine, ex, tmp_path)
    phone = sms.MemoryGateway(fail_phones={ex.payee(2)["contact_phone"]})
    r = sms.send_notices_in_chunks(engine, phone, ex.T0, settings, chunk=3, limit=5)
    assert (r.sent, r.failed, len(phone.sent)) == (4, 1, 4) and "无法送达" in r.errors[0]
    with transaction(engine) as s:
        # The refused message keeps the provider's error and no token (its link opens nothing); each
        # one sent keeps the provider's reference.
        rows = s.scalars(select(SmsMessage).order_by(SmsMessage.id)).all()
        refused = [m for m in rows if m.status == "failed"]
        assert len(refused) == 1 and "无法送达" in (refused[0].error or "") and refused[0].token_hash is None
        assert sorted(m.provider_ref for m in rows if m.status == "sent") == sorted(phone.refs.values())
    phone.fail_phones.clear()
    r = sms.send_notices_in_chunks(engine, phone, ex.T0, settings, chunk=3)
    assert (r.sent, r.failed, len(phone.sent)) == (N - 4, 0, N)
    with transaction(engine) as s:
        assert Counter(s.scalars(select(Offer.state)).all()) == {"notified": N}
        assert audit.verify(s).ok
