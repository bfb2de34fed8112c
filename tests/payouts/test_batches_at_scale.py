"""A batch larger than one statement's bind parameters (65,535 on PostgreSQL): issue 31.

Made, approved, exported and reconciled on PostgreSQL; the bank files must hold every offer, to the fen.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from payouts import audit, bankfiles, batches, offers
from payouts.db import transaction
from payouts.imports import import_run
from payouts.models import AuditEvent, BatchLine, Offer

H = dt.timedelta(hours=1)
N = 70_000  # more offers than PostgreSQL takes bind parameters in one statement


def _amount(k: int) -> str:
    return f"{1000 + k % 997}.{k % 100:02d}"


def test_a_batch_of_70000_offers_is_made_approved_exported_and_reconciled(
    engine: Engine, ex, tmp_path: Path, t0: dt.datetime
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the 65,535 bind parameter limit is PostgreSQL's; SQLite runs the small batch tests")
    run = ex.write_run(
        tmp_path / "run",
        [ex.policy("big", budget=None, confirmation="none")],
        [("big", "main", k, _amount(k)) for k in range(1, N + 1)],
        [ex.payee(k) for k in range(1, N + 1)],
    )
    with transaction(engine) as s:  # seeded set-based: bulk import, then one UPDATE to confirmed
        import_run(s, run, "rev", t0)
        assert offers.release(s, "rev", t0).confirmed == N
    with transaction(engine) as s:
        made = batches.create_batch(s, "big", "maker", t0 + H)
        ref = made.reference
    with transaction(engine) as s:
        batches.approve(s, ref, "checker", t0 + 2 * H)
    with transaction(engine) as s:
        files = batches.export(s, ref, "maker", tmp_path / "bank", t0 + 3 * H)
    expected = sum((Decimal(_amount(k)) for k in range(1, N + 1)), Decimal("0.00"))
    with transaction(engine) as s:
        count, total = s.execute(
            select(func.count(), func.sum(Offer.amount)).where(
                Offer.policy_id == "big", Offer.state == "in_batch"
            )
        ).one()
        assert (count, total) == (N, expected)
        assert (made.line_count, made.total) == (N, expected)
        # One bulk event for the whole move, listing every offer.
        (moved,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "batch")).all()
        assert (moved.entity, moved.entity_id, f'"count":{N}' in moved.data) == ("offers", ref, True)

    rows = list(csv.reader(io.StringIO(files.csv_path.read_text(encoding="utf-8-sig"))))
    header = dict(zip(rows[0][::2], rows[0][1::2], strict=True))
    assert (header["总笔数"], header["总金额"]) == (str(N), f"{expected:.2f}")
    assert len(rows) == N + 2 and sum(Decimal(r[6]) for r in rows[2:]) == expected
    assert [int(r[0]) for r in rows[2:]] == list(range(1, N + 1))
    assert len({r[8] for r in rows[2:]}) == N  # every line its own bank reference

    ns = {"p": bankfiles.PAIN001}
    root = ET.parse(files.xml_path).getroot()
    txs = root.findall("p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf", ns)
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == str(N) == str(len(txs))
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == f"{expected:.2f}"
    assert sum(Decimal(t.findtext("p:Amt/p:InstdAmt", namespaces=ns) or "") for t in txs) == expected

    with transaction(engine) as s:
        content = batches.bank_file_of(s, batches.get_batch(s, ref))
        failing = {ln.reference: "账户已销户" for ln in content.lines[:3]}
        result = batches.reconcile(s, ref, bankfiles.render_return(content, failing), "checker", t0 + 30 * H)
        assert (result.paid, result.failed, result.pending) == (N - 3, 3, 0)
        assert result.paid_amount + result.failed_amount == expected
        assert s.scalar(select(func.count()).where(BatchLine.status == "paid")) == N - 3
        assert s.scalar(select(func.count()).where(Offer.state == "payment_failed")) == 3
        assert audit.verify(s).ok
