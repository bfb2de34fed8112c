"""The bank files written line by line are the documents ElementTree and csv make of the whole batch."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from payouts import bankfiles as bf

# Texts that need escaping, and names of exactly pain.001's limits (longer ones, and names with control
# characters, are refused: tests/security/test_bank_names.py).
ODD = ["", "a&b<c>d\"e'f", "示例企业" * 35, "line break  tab", "]]>", "x" * 34]
ACCOUNTS = ["", "a&b<c>d", "]]>", "9" * 34]


def _batch(n_lines: int, purpose: str = "用途 <&> 测试（2025）") -> bf.BatchFile:
    lines = [
        bf.FileLine(
            line_no=k,
            reference=f"ZL{k:020X}",
            account_name=ODD[k % len(ODD)] or "户名",
            account_no=ACCOUNTS[(k + 1) % len(ACCOUNTS)],
            bank_name=ODD[(k + 2) % len(ODD)],
            amount=Decimal(k * 1234567 % 100_000_000).scaleb(-2),
        )
        for k in range(1, n_lines + 1)
    ]
    created = dt.datetime(2025, 6, 2, 9, 0, 1, 123456, tzinfo=dt.UTC)
    return bf.BatchFile(
        "ZDREF", created, created.date(), "付款&人<>", "1100601", "工行 & 分行", purpose, lines
    )


def _sub(parent: ET.Element, path: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = parent
    for name in path.split("/"):
        node = ET.SubElement(node, name)
    node.attrib.update(attrs)
    if text is not None:
        node.text = text
    return node


def _whole_document(b: bf.BatchFile) -> bytes:
    """pain.001 made by ElementTree as one tree (how the files were made before streaming)."""
    m = lambda t, n: t[:n]  # noqa: E731
    doc = ET.Element("Document", xmlns=bf.PAIN001)
    root = _sub(doc, "CstmrCdtTrfInitn")
    h = _sub(root, "GrpHdr")
    _sub(h, "MsgId", b.reference)
    _sub(h, "CreDtTm", b.created.astimezone(bf.CHINA).replace(microsecond=0).isoformat())
    _sub(h, "NbOfTxs", str(len(b.lines)))
    _sub(h, "CtrlSum", f"{b.total:.2f}")
    _sub(h, "InitgPty/Nm", m(b.payer_name, 140))
    info = _sub(root, "PmtInf")
    for path, text in (
        ("PmtInfId", b.reference),
        ("PmtMtd", "TRF"),
        ("BtchBookg", "false"),
        ("NbOfTxs", str(len(b.lines))),
        ("CtrlSum", f"{b.total:.2f}"),
        ("PmtTpInf/CtgyPurp/Cd", "GOVT"),
        ("ReqdExctnDt/Dt", b.execution_date.isoformat()),
        ("Dbtr/Nm", m(b.payer_name, 140)),
    ):
        _sub(info, path, text)
    acct = _sub(info, "DbtrAcct")
    _sub(acct, "Id/Othr/Id", m(b.payer_account, 34))
    _sub(acct, "Ccy", "CNY")
    _sub(info, "DbtrAgt/FinInstnId/Nm", m(b.payer_bank, 140))
    _sub(info, "ChrgBr", "DEBT")
    for ln in b.lines:
        tx = _sub(info, "CdtTrfTxInf")
        pid = _sub(tx, "PmtId")
        _sub(pid, "InstrId", str(ln.line_no))
        _sub(pid, "EndToEndId", ln.reference)
        _sub(tx, "Amt/InstdAmt", f"{ln.amount:.2f}", Ccy="CNY")
        _sub(tx, "CdtrAgt/FinInstnId/Nm", m(ln.bank_name, 140))
        _sub(tx, "Cdtr/Nm", m(ln.account_name, 140))
        _sub(tx, "CdtrAcct/Id/Othr/Id", m(ln.account_no, 34))
        _sub(tx, "Purp/Cd", "GOVT")
        _sub(tx, "RmtInf/Ustrd", m(b.purpose, 140))
    ET.indent(doc)
    return ET.tostring(doc, encoding="UTF-8", xml_declaration=True) + b"\n"


@pytest.mark.parametrize("n_lines", [0, 1, 7, 25])
@pytest.mark.parametrize("purpose", ["用途 <&> 测试（2025）", ""])
def test_the_streamed_pain001_is_the_whole_document(n_lines: int, purpose: str) -> None:
    b = _batch(n_lines, purpose)
    assert bf.render_pain001(b) == _whole_document(b)
    out = io.BytesIO()
    bf.write_pain001(b.header(), iter(b.lines), out, chunk=3)  # several chunks, lines given once
    assert out.getvalue() == _whole_document(b)


def test_the_streamed_csv_is_the_whole_file() -> None:
    b = _batch(25)
    out = io.BytesIO()
    bf.write_csv(b.header(), iter(b.lines), out, chunk=4)
    assert out.getvalue() == bf.render_csv(b)
    rows = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline="")))
    assert len(rows) == 27 and rows[0][3] == "25" and rows[0][5] == f"{b.total:.2f}"
    assert [r[8] for r in rows[2:]] == [ln.reference for ln in b.lines]
