"""Enterprise sign-in codes and standings on each backend (SQLite and PostgreSQL): codes are single use,
expire, are kept only as an HMAC; five wrong codes block the address (not the enterprise), also when
guessed in parallel, and only the day's ceiling over all addresses locks the enterprise; the
standings of a run come from its files, read through the per-run cache.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from payouts import imports
from payouts.sms import MemoryGateway
from portal import identity
from portal.models import EnterpriseLogin, LoginClient, LoginCode
from portal.standings import MATCHED, MISSING, NEAR_MISS, Contact, Standings

SECRET = b"test-secret"


def _send(tx, phone: MemoryGateway, who: Contact, now: dt.datetime) -> str:  # type: ignore[no-untyped-def]
    with tx() as s:
        identity.send_code(s, who, phone, secret=SECRET, sign="惠企直达", now=now, ip="10.0.0.1")
    return phone.sent[-1].params["code"]


def _check(tx, uscc: str, code: str, now: dt.datetime) -> identity.Attempt:  # type: ignore[no-untyped-def]
    with tx() as s:
        return identity.check_code(s, uscc, code, secret=SECRET, now=now, ip="10.0.0.1")


def test_a_code_is_random_hashed_single_use_and_expires(tx, ex, t0) -> None:  # type: ignore[no-untyped-def]
    who = Contact(ex.uscc(1), "示例企业1有限公司", "13800000001")
    phone = MemoryGateway()
    code = _send(tx, phone, who, t0)
    assert len(code) == 6 and code.isdigit() and phone.sent[-1].phone == "13800000001"
    with tx() as s:
        row = s.scalars(select(LoginCode)).one()
        assert row.code_hash == identity.code_hash(SECRET, who.uscc, code) and code not in row.code_hash
        assert row.phone_masked == "138****0001"
    assert _check(tx, who.uscc, code, t0 + dt.timedelta(minutes=1)).ok
    assert not _check(tx, who.uscc, code, t0 + dt.timedelta(minutes=2)).ok  # used up
    late = _send(tx, phone, who, t0)
    attempt = _check(tx, who.uscc, late, t0 + identity.CODE_TTL)
    assert not attempt.ok and "失效" in attempt.message


def test_five_wrong_codes_in_a_row_block_that_address_for_the_stated_period(tx, ex, t0) -> None:  # type: ignore[no-untyped-def]
    who = Contact(ex.uscc(2), "示例企业2有限公司", "13800000002")
    phone = MemoryGateway()
    code = _send(tx, phone, who, t0)
    bad = f"{(int(code) + 1) % 10**6:06d}"
    answers = [_check(tx, who.uscc, bad, t0) for _ in range(5)]
    assert [a.tries_left for a in answers] == [4, 3, 2, 1, 0]
    assert answers[-1].locked_until == t0 + identity.CLIENT_BLOCK and not answers[-1].enterprise_locked
    assert answers[-1].guessed
    assert not _check(tx, who.uscc, code, t0).ok  # not from this address, even the right code
    with tx() as s:
        try:
            identity.send_code(s, who, phone, secret=SECRET, sign="惠企直达", now=t0, ip="10.0.0.1")
            raise AssertionError("a blocked address got a code")
        except identity.LoginError as e:
            assert "本设备" in str(e)
    with tx() as s:  # another address signs in with the code meanwhile
        assert identity.check_code(s, who.uscc, code, secret=SECRET, now=t0, ip="10.0.0.2").ok
    later = t0 + identity.CLIENT_BLOCK + dt.timedelta(seconds=1)
    assert _check(tx, who.uscc, _send(tx, phone, who, later), later).ok


def test_blocks_of_one_address_grow_and_the_enterprise_locks_only_at_the_ceiling(tx, ex, t0) -> None:  # type: ignore[no-untyped-def]
    who = Contact(ex.uscc(4), "示例企业4有限公司", "13800000004")
    phone = MemoryGateway()
    at, blocks = t0, []
    for _ in range(3):
        code = _send(tx, phone, who, at)
        bad = f"{(int(code) + 1) % 10**6:06d}"
        answers = [_check(tx, who.uscc, bad, at) for _ in range(identity.MAX_FAILURES)]
        assert answers[-1].locked_until is not None and not answers[-1].enterprise_locked
        blocks.append(answers[-1].locked_until - at)
        at = answers[-1].locked_until + dt.timedelta(seconds=1)
    assert blocks == [identity.CLIENT_BLOCK, 2 * identity.CLIENT_BLOCK, 4 * identity.CLIENT_BLOCK]
    # Many addresses together reach the ceiling: then the whole enterprise is locked out.
    with tx() as s:
        identity.send_code(s, who, phone, secret=SECRET, sign="惠企直达", now=at, ip="10.9.9.9")
    code = phone.sent[-1].params["code"]
    bad = f"{(int(code) + 1) % 10**6:06d}"
    answer = None
    for n in range(identity.ENTERPRISE_CEILING):
        with tx() as s:
            answer = identity.check_code(s, who.uscc, bad, secret=SECRET, now=at, ip=f"10.1.{n // 4}.{n % 4}")
        if answer.enterprise_locked:
            break
    assert answer is not None and answer.enterprise_locked and answer.locked_until == at + identity.LOCKOUT
    assert n + 1 == identity.ENTERPRISE_CEILING - 3 * identity.MAX_FAILURES
    with tx() as s:
        assert not identity.check_code(s, who.uscc, code, secret=SECRET, now=at, ip="10.9.9.9").ok


def test_parallel_guesses_are_counted_one_by_one(tx, ex, t0) -> None:  # type: ignore[no-untyped-def]
    who = Contact(ex.uscc(3), "示例企业3有限公司", "13800000003")
    code = _send(tx, MemoryGateway(), who, t0)
    guesses = [f"{(int(code) + k) % 10**6:06d}" for k in range(1, 13)]
    results: list[identity.Attempt] = []
    lock = threading.Lock()

    def guess(g: str) -> None:
        attempt = _check(tx, who.uscc, g, t0)
        with lock:
            results.append(attempt)

    threads = [threading.Thread(target=guess, args=(g,)) for g in guesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not any(r.ok for r in results)
    counted = [r for r in results if r.locked_until is None]
    assert len(counted) == 4  # the fifth wrong code blocks the address; every later one meets the block
    with tx() as s:
        row = s.scalars(select(LoginClient).where(LoginClient.uscc == who.uscc)).one()
        assert row.blocked_until == t0 + identity.CLIENT_BLOCK and row.client == "10.0.0.1"
        assert (
            s.scalars(select(EnterpriseLogin.locked_until).where(EnterpriseLogin.uscc == who.uscc)).one()
            is None
        )


def test_no_code_without_a_registered_phone(tx, ex, t0) -> None:  # type: ignore[no-untyped-def]
    with tx() as s:
        for who in (None, Contact(ex.uscc(6), "示例企业6有限公司", None)):
            try:
                identity.send_code(s, who, MemoryGateway(), secret=SECRET, sign="惠企直达", now=t0, ip=None)
                raise AssertionError("a code went nowhere")
            except identity.LoginError as e:
                assert "联系电话" in str(e)


def test_standings_come_from_the_runs_files(tx, ex, small_run: Path, t0, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pq.write_table(
        pa.table(
            {
                "policy_id": ["gaoxin", "wengang"],
                "item_id": ["main", "large"],
                "uscc": [ex.uscc(2), ex.uscc(1)],
                "condition_id": ["ok", "ok"],
                "value": ["layoff_rate=0.061", "is_high_tech=false"],
            }
        ),
        small_run / "near_misses.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "policy_id": ["wengang"],
                "item_id": ["large"],
                "uscc": [ex.uscc(2)],
                "fields": pa.array([["ui_premium_paid"]], pa.list_(pa.string())),
            }
        ),
        small_run / "missing_data.parquet",
    )
    with tx() as s:
        imports.import_run(s, small_run, "rev", t0)
    standings = Standings(tmp_path / "cache")
    with tx() as s:
        view, items = standings.standings(s, ex.uscc(2))
        assert view is not None
        by = {(x.item.policy_id, x.item.item_id): x for x in items}
        assert by[("wengang", "sme")].status == MATCHED and by[("wengang", "sme")].offer is not None
        assert by[("gaoxin", "main")].status == NEAR_MISS and by[("gaoxin", "main")].value_text == "6.1%"
        gap = by[("wengang", "large")]
        assert gap.status == MISSING and gap.gaps[0].label == "上年度实缴失业保险费"
        assert gap.gaps[0].department == "人力资源和社会保障局"
        assert standings.contact(s, ex.uscc(2)) == Contact(ex.uscc(2), "示例企业2有限公司", "13800000002")
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 1


def test_a_code_is_checked_against_its_own_addresss_code_else_the_newest(tx, ex, t0) -> None:  # type: ignore[no-untyped-def]
    who = Contact(ex.uscc(5), "示例企业5有限公司", "13800000005")
    phone = MemoryGateway()

    def send(ip: str) -> str:
        with tx() as s:
            identity.send_code(s, who, phone, secret=SECRET, sign="惠企直达", now=t0, ip=ip)
        return phone.sent[-1].params["code"]

    def check(ip: str, code: str) -> bool:
        with tx() as s:
            return identity.check_code(s, who.uscc, code, secret=SECRET, now=t0, ip=ip).ok

    theirs, mine = send("203.0.113.1"), send("198.51.100.1")
    if theirs != mine:
        # A guesser's address is checked against the code it asked for, never against every live code.
        assert not check("203.0.113.1", mine)
    # The owner's phone moved to another network: the newest code still signs it in.
    assert check("198.51.100.99", mine)
