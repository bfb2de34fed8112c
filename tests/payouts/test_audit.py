"""The audit log: every change recorded, hash-chained, tamper-evident, and never forked by concurrent writers."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select, text

from payouts import audit, confirm
from payouts.db import make_engine, migrate, transaction
from payouts.models import AuditEvent, Offer


def tamper(engine: Engine, statement: str) -> None:
    """Run `statement` as someone with rights over the database would, past the append-only triggers."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(statement))
            return
        triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
        for name, _ in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        conn.execute(text(statement))
        for _, sql in triggers:
            conn.execute(text(sql))


def _replay(events: list[AuditEvent]) -> str | None:
    state = None
    for e in events:
        assert e.from_state == state, f"event {e.seq} starts from {e.from_state}, the offer was {state}"
        state = e.to_state
    return state


def test_each_offer_history_replays_to_its_current_state(tx, notified, t0) -> None:
    with tx() as s:
        confirm.confirm(s, notified.links[1], ip=None, user_agent=None, now=t0)
        for o in s.scalars(select(Offer)).all():
            assert _replay(audit.history(s, "offer", o.public_id)) == o.state
        history = audit.history(s, "offer", notified.ids[1])
        assert [e.action for e in history] == ["import", "release", "notify", "confirm"]
        assert history[-1].actor.startswith("enterprise:")


@pytest.mark.parametrize(
    ("statement", "finding"),
    [
        ("UPDATE audit_event SET reason = '改过' WHERE seq = 3", "第 3 条的内容与其哈希不符"),
        ("DELETE FROM audit_event WHERE seq = 3", "第 3 条之后缺少事件"),
        (
            "DELETE FROM audit_member WHERE entity_id = (SELECT min(entity_id) FROM audit_member)",
            "对象清单与事件记录不符",
        ),
        ("UPDATE offer SET match_run_id = match_run_id WHERE 1 = 0", None),
        ("UPDATE audit_head SET seq = seq - 1", "链头记录"),
    ],
)
def test_verify_finds_any_change_to_the_log(engine, tx, notified, statement, finding) -> None:
    tamper(engine, statement)
    with tx() as s:
        report = audit.verify(s)
    if finding is None:
        assert report.ok
    else:
        assert not report.ok and any(finding in p for p in report.problems), report.problems


def test_an_import_event_covers_exactly_the_offers_of_its_run(engine, tx, notified) -> None:
    # Slipping an offer of another run into this run changes the import event's member list.
    tamper(
        engine, "UPDATE offer SET public_id = 'ffffffffffffffffffff' WHERE id = (SELECT min(id) FROM offer)"
    )
    with tx() as s:
        assert any("对象清单" in p for p in audit.verify(s).problems)


def test_concurrent_writers_never_fork_the_chain(engine, t0) -> None:
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            start.wait()
            for i in range(15):
                with transaction(engine) as s:
                    audit.record(s, t0, f"w{k}", "note", "user", f"u{k}-{i}")
        except BaseException as e:  # reported below, not swallowed
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with transaction(engine) as s:
        report = audit.verify(s)
        assert report.ok, report.problems
        assert report.events == 6 + 8 * 15  # the six staff users, then the notes


def test_events_written_before_the_chain_was_keyed_still_verify_under_the_first_keyed_event(
    tmp_path, t0
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0004")  # the schema of before the key: plain SHA-256 hashes
    prev = audit.GENESIS
    with engine.begin() as conn:
        for seq in (1, 2, 3):
            row = {
                "seq": seq,
                "at": t0,
                "actor": "rev",
                "action": "note",
                "entity": "user",
                "entity_id": f"u{seq}",
                "from_state": None,
                "to_state": None,
                "reason": None,
                "data": "{}",
                "prev_hash": prev,
            }
            row["hash"] = prev = audit.legacy_hash(prev, row)
            conn.execute(text(f"INSERT INTO audit_event ({', '.join(row)}) VALUES (:{', :'.join(row)})"), row)
        conn.execute(text("UPDATE audit_head SET seq = 3, hash = :h"), {"h": prev})
    migrate(engine)
    with transaction(engine) as s:
        audit.record(s, t0, "rev", "note", "user", "u4")
        audit.record(s, t0, "rev", "note", "user", "u5")
    with transaction(engine) as s:
        report = audit.verify(s)
        assert report.ok, report.problems
        assert (report.events, report.legacy) == (5, 3)
        assert s.scalars(select(AuditEvent.chain).order_by(AuditEvent.seq)).all() == [1, 1, 1, 2, 2]
    # Changing an event of before the key and recomputing the plain hashes after it (which needs no
    # key) is found at the first keyed event: its HMAC covers the last plain hash.
    with engine.begin() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM audit_event ORDER BY seq")).mappings()]
    rows[1]["actor"] = "x"
    for i in (1, 2):
        rows[i]["prev_hash"] = rows[i - 1]["hash"]
        rows[i]["hash"] = audit.legacy_hash(rows[i]["prev_hash"], {**rows[i], "at": t0})
    for i in (1, 2):
        tamper(
            engine,
            f"UPDATE audit_event SET actor = '{rows[i]['actor']}', prev_hash = '{rows[i]['prev_hash']}', hash = '{rows[i]['hash']}' WHERE seq = {i + 1}",
        )
    tamper(engine, f"UPDATE audit_event SET prev_hash = '{rows[2]['hash']}' WHERE seq = 4")
    with transaction(engine) as s:
        problems = audit.verify(s).problems
    assert problems and all("第 4 条" in p for p in problems), problems
    engine.dispose()
