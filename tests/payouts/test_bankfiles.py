"""Bank files of an approved batch, and the bank's return file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from payouts import audit, bankfiles, batches, confirm
from payouts.errors import BankFileError
from payouts.models import Offer
from rules.errors import StateError

H = dt.timedelta(hours=1)
NS = {"p": bankfiles.PAIN001}


@pytest.fixture
def approved(tx, notified, t0) -> str:
    """The four confirmed offers of `wengang` in an approved batch; returns its reference."""
    with tx() as s:
        for n in (1, 2, 3, 4):
            confirm.confirm(s, notified.links[n], ip=None, user_agent=None, now=t0 + H)
        ref = batches.create_batch(s, "wengang", "maker", t0 + 2 * H).reference
        batches.approve(s, ref, "checker", t0 + 3 * H)
    return ref


def test_the_csv_has_the_batch_count_and_total_in_its_header_and_one_row_per_transfer(
    tx, approved, tmp_path, t0
) -> None:
    with tx() as s:
        e = batches.export(s, approved, "maker", tmp_path, t0 + 4 * H)
    rows = list(csv.reader(io.StringIO(e.csv_path.read_text(encoding="utf-8-sig"))))
    header = dict(zip(rows[0][::2], rows[0][1::2], strict=True))
    assert (header["批次号"], header["总笔数"], header["总金额"], header["币种"]) == (
        approved,
        "4",
        "7500.50",
        "CNY",
    )
    assert rows[1] == list(bankfiles.CSV_COLUMNS)
    assert sum(Decimal(r[6]) for r in rows[2:]) == Decimal("7500.50")
    assert {r[4] for r in rows[2:]} == {f"示例企业{n}有限公司" for n in (1, 2, 3, 4)}


def test_the_pain001_file_is_iso20022_with_counts_and_control_sums(tx, approved, tmp_path, t0) -> None:
    with tx() as s:
        e = batches.export(s, approved, "maker", tmp_path, t0 + 4 * H)
    root = ET.parse(e.xml_path).getroot()
    assert root.tag == f"{{{bankfiles.PAIN001}}}Document"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=NS) == approved
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=NS) == "4"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "7500.50"
    txs = root.findall("p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf", NS)
    assert sum(Decimal(t.findtext("p:Amt/p:InstdAmt", namespaces=NS)) for t in txs) == Decimal("7500.50")
    assert {t.find("p:Amt/p:InstdAmt", NS).get("Ccy") for t in txs} == {"CNY"}
    # The order the schema requires inside a transaction.
    assert [c.tag.split("}")[1] for c in txs[0]] == [
        "PmtId",
        "Amt",
        "CdtrAgt",
        "Cdtr",
        "CdtrAcct",
        "Purp",
        "RmtInf",
    ]


def test_exporting_again_gives_identical_files(tx, approved, tmp_path: Path, t0) -> None:
    with tx() as s:
        first = batches.export(s, approved, "maker", tmp_path / "a", t0 + 4 * H)
    with tx() as s:
        second = batches.export(s, approved, "checker", tmp_path / "b", t0 + 9 * H)
    assert first.csv_path.read_bytes() == second.csv_path.read_bytes()
    assert first.xml_path.read_bytes() == second.xml_path.read_bytes()
    assert (first.csv_sha256, first.xml_sha256) == (second.csv_sha256, second.xml_sha256)


def test_only_an_approved_batch_can_be_exported(tx, notified, tmp_path, t0) -> None:
    with tx() as s:
        confirm.confirm(s, notified.links[1], ip=None, user_agent=None, now=t0 + H)
        ref = batches.create_batch(s, "wengang", "maker", t0 + 2 * H).reference
        with pytest.raises(StateError, match="复核通过后"):
            batches.export(s, ref, "maker", tmp_path, t0 + 2 * H)


def _exported(tx, ref, tmp_path, t0) -> bankfiles.BatchFile:
    with tx() as s:
        batches.export(s, ref, "maker", tmp_path, t0 + 4 * H)
        return batches.bank_file_of(s, batches.get_batch(s, ref))


def test_reconciling_marks_each_line_paid_or_failed_with_the_banks_reason(tx, approved, tmp_path, t0) -> None:
    content = _exported(tx, approved, tmp_path, t0)
    fail = content.lines[1]
    with tx() as s:
        r = batches.reconcile(
            s,
            approved,
            bankfiles.render_return(content, {fail.reference: "账户冻结"}),
            "checker",
            t0 + 30 * H,
        )
        assert (r.paid, r.failed, r.pending, r.paid_amount + r.failed_amount) == (3, 1, 0, Decimal("7500.50"))
        assert batches.get_batch(s, approved).state == "reconciled"
        states = sorted(
            o.state for o in s.scalars(select(Offer).where(Offer.state.in_(["paid", "payment_failed"])))
        )
        assert states == ["paid", "paid", "paid", "payment_failed"]
        assert audit.verify(s).ok


def test_a_partial_return_leaves_the_rest_pending_and_a_repeat_is_refused(tx, approved, tmp_path, t0) -> None:
    content = _exported(tx, approved, tmp_path, t0)
    first_two = bankfiles.BatchFile(**{**content.__dict__, "lines": content.lines[:2]})
    data = bankfiles.render_return(first_two, {})
    with tx() as s:
        assert batches.reconcile(s, approved, data, "maker", t0 + 30 * H).pending == 2
    with pytest.raises(BankFileError, match="重复"), tx() as s:
        batches.reconcile(s, approved, data, "maker", t0 + 31 * H)
    again = data.replace(b"\r\n", b"\n")  # the same lines in another file
    with pytest.raises(BankFileError, match="已对账"), tx() as s:
        batches.reconcile(s, approved, again, "maker", t0 + 31 * H)


def test_a_return_file_for_another_batch_or_with_other_amounts_is_refused(tx, approved, tmp_path, t0) -> None:
    content = _exported(tx, approved, tmp_path, t0)
    other = bankfiles.BatchFile(**{**content.__dict__, "reference": "ZDOTHERBATCH"})
    with pytest.raises(BankFileError, match="不是批次"), tx() as s:
        batches.reconcile(s, approved, bankfiles.render_return(other, {}), "maker", t0 + 30 * H)
    line = content.lines[0]
    changed = [
        bankfiles.FileLine(**{**line.__dict__, "amount": line.amount + Decimal("0.01")}),
        *content.lines[1:],
    ]
    tampered = bankfiles.BatchFile(**{**content.__dict__, "lines": changed})
    with pytest.raises(BankFileError, match=r"金额 .* 不符"), tx() as s:
        batches.reconcile(s, approved, bankfiles.render_return(tampered, {}), "maker", t0 + 30 * H)
    with tx() as s:
        assert batches.get_batch(s, approved).state == "exported"  # nothing was applied


def test_a_malformed_return_file_is_refused_with_its_problems() -> None:
    data = "批次号,业务参考号,收款账号,金额,状态,失败原因\r\nZD1,ZL1,1,12.345,成功,\r\nZD1,ZL2,2,5.00,退回,\r\nZD1,ZL3,3,5.00,失败,\r\n"
    with pytest.raises(BankFileError) as e:
        bankfiles.parse_return(data.encode("gb18030"))
    assert (
        "第 2 行：金额" in str(e.value)
        and "第 3 行：状态" in str(e.value)
        and "第 4 行：失败的明细必须有失败原因" in str(e.value)
    )


def _as_excel_reads(data: bytes, encoding: str) -> list[list[str]]:
    """The cells Excel shows for a CSV: the text decoded as `encoding` (the BOM taken as the marker it
    is), each cell with the blanks around it dropped, as Excel displays a text cell."""
    rows = list(csv.reader(io.StringIO(data.decode(encoding), newline="")))
    return [[cell.strip() for cell in r] for r in rows]


def test_the_csv_opens_in_chinese_excel_with_its_names_and_every_digit_of_the_accounts(
    tx, approved, tmp_path, t0, monkeypatch
) -> None:
    monkeypatch.delenv("ZHIDA_BANK_CSV_ENCODING", raising=False)
    with tx() as s:
        e = batches.export(s, approved, "maker", tmp_path, t0 + 4 * H)
    data = e.csv_path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8, not GBK
    raw = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    # Every account number after a tab: Excel keeps it as text (never 4.30015E+19); the digits are intact.
    accounts = [r[3] for r in raw[2:]]
    assert all(a.startswith("\t") and a[1:].isdigit() and len(a) == 21 for a in accounts)
    assert raw[2][1].startswith("\t")  # the payer's account too
    shown = _as_excel_reads(data, "utf-8-sig")
    assert {r[3] for r in shown[2:]} == {f"4300150{n:013d}" for n in (1, 2, 3, 4)}
    assert {r[4] for r in shown[2:]} == {f"示例企业{n}有限公司" for n in (1, 2, 3, 4)}
    assert not any(cell.startswith("=") for r in raw for cell in r)  # no formula reaches the bank


def test_a_bank_that_asks_for_gb18030_gets_it_without_a_bom(tx, approved, tmp_path, t0, monkeypatch) -> None:
    monkeypatch.setenv("ZHIDA_BANK_CSV_ENCODING", "GB18030")
    with tx() as s:
        e = batches.export(s, approved, "maker", tmp_path, t0 + 4 * H)
    data = e.csv_path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # it really is the Chinese code page, not UTF-8 relabelled
    shown = _as_excel_reads(data, "gb18030")
    assert shown[1] == list(bankfiles.CSV_COLUMNS)
    assert {r[4] for r in shown[2:]} == {f"示例企业{n}有限公司" for n in (1, 2, 3, 4)}
    assert {r[3] for r in shown[2:]} == {f"4300150{n:013d}" for n in (1, 2, 3, 4)}


def test_an_unknown_bank_file_encoding_is_refused_naming_the_setting_and_its_values(monkeypatch) -> None:
    from payouts.db import PayoutSettings
    from rules.errors import PayoutError

    monkeypatch.setenv("ZHIDA_BANK_CSV_ENCODING", "big5")
    with pytest.raises(PayoutError, match=r"ZHIDA_BANK_CSV_ENCODING.*utf-8.*gb18030"):
        PayoutSettings.from_env()


def test_a_return_file_saved_from_excel_with_accounts_as_text_reconciles(tx, approved, tmp_path, t0) -> None:
    with tx() as s:
        e = batches.export(s, approved, "maker", tmp_path, t0 + 4 * H)
    rows = list(csv.reader(io.StringIO(e.csv_path.read_text(encoding="utf-8-sig"))))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(bankfiles.RETURN_COLUMNS)
    for n, r in enumerate(rows[2:]):
        account = r[3] if n % 2 else f'="{r[3].strip()}"'  # as the bank wrote it, or as Excel kept it
        w.writerow([approved, r[8], account, r[6], "成功", ""])
    with tx() as s:
        done = batches.reconcile(s, approved, out.getvalue().encode("gb18030"), "maker", t0 + 5 * H)
    assert (done.paid, done.failed, done.paid_amount) == (4, 0, Decimal("7500.50"))


def test_a_return_file_is_read_streamed_in_chunks_from_an_open_file(
    tx, approved, tmp_path, t0, monkeypatch
) -> None:
    """The command line hands reconcile the open file: lines are read a chunk at a time (here one
    line per chunk), and the result is the same as from bytes."""
    monkeypatch.setattr(bankfiles, "RETURN_CHUNK", 1)
    content = _exported(tx, approved, tmp_path, t0)
    fail = content.lines[2]
    path = tmp_path / "回单.csv"
    with path.open("wb") as out:
        bankfiles.write_return(approved, content.lines, lambda ln: "户名不符" if ln is fail else None, out)
    with tx() as s, path.open("rb") as data:
        r = batches.reconcile(s, approved, data, "checker", t0 + 30 * H, filename=path.name)
        assert (r.paid, r.failed, r.pending) == (3, 1, 0)
        assert [reason for _, reason in r.failures] == ["户名不符"]


def test_a_line_repeated_in_a_later_chunk_is_refused(tx, approved, tmp_path, t0, monkeypatch) -> None:
    monkeypatch.setattr(bankfiles, "RETURN_CHUNK", 2)
    content = _exported(tx, approved, tmp_path, t0)
    twice = bankfiles.BatchFile(**{**content.__dict__, "lines": [*content.lines, content.lines[0]]})
    with pytest.raises(BankFileError, match="第 6 行：明细 .* 在回单中重复"), tx() as s:
        batches.reconcile(s, approved, bankfiles.render_return(twice, {}), "maker", t0 + 30 * H)
    with tx() as s:
        assert batches.get_batch(s, approved).state == "exported"  # nothing was applied


def test_a_return_file_with_thousands_of_bad_lines_lists_fifty_and_counts_the_rest() -> None:
    rows = "".join(f"ZD1,ZL{n},1,0.001,成功,\r\n" for n in range(3_000))
    with pytest.raises(BankFileError) as e:
        bankfiles.parse_return(("批次号,业务参考号,收款账号,金额,状态,失败原因\r\n" + rows).encode())
    message = str(e.value)
    assert message.count("金额 '0.001' 无效") == bankfiles.PROBLEMS_SHOWN
    assert f"另有 {3_000 - bankfiles.PROBLEMS_SHOWN} 处问题未列出" in message
