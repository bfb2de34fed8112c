"""The treasury's electronic payment voucher: one per line, valid against its schema, totalling the
batch; the treasury's answer reconciled; pain.001 valid against the ISO 20022 schema."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from payouts import bankfiles, batches, confirm, finance, vouchers
from payouts.errors import BankExportError, BankFileError
from payouts.models import Offer
from rules.errors import StateError
from tests.staff import share_cost

H = dt.timedelta(hours=1)


def _exported(tx, notified, tmp_path: Path, t0):
    for n in (1, 2, 3, 4):
        with tx() as s:
            confirm.confirm(s, notified.links[n], ip="203.0.113.1", user_agent="t", now=t0 + H)
    with tx() as s:
        share_cost(s, "wengang", t0, shares=(2, 1))
        city, district = batches.create_batches(s, "wengang", "maker", t0 + 2 * H)
        for b in (city, district):
            batches.approve(s, b.reference, "checker", t0 + 3 * H)
        exported = batches.export(s, district.reference, "maker", tmp_path, t0 + 4 * H)
        return city.reference, district.reference, exported


def test_treasury_vouchers_validate_against_the_schema_and_total_the_batch(
    tx, notified, tmp_path, t0
) -> None:
    _, district, exported = _exported(tx, notified, tmp_path, t0)
    assert exported.csv_path is None and exported.voucher_path is not None  # the payer asks for vouchers
    data = exported.voucher_path.read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    root = etree.fromstring(data)
    vouchers.schema().assertValid(root)
    with tx() as s:
        batch = batches.get_batch(s, district)
        payer_account = batch.payer_account
        amounts = [Decimal(x) for x in root.xpath("//Voucher/PayAmt/text()")]
        assert len(amounts) == int(root.findtext("VoucherCount")) == batch.line_count == 4
        assert sum(amounts) == batch.total == Decimal("2500.17")  # a third of each line, fen-exact
        assert batch.voucher_sha256 is not None and batch.state == "exported"
    first = root.find("VoucherBody/Voucher")
    assert first.findtext("AdmDivCode") == "430102"
    assert first.findtext("PayAcctNo") == payer_account
    assert first.findtext("AgentBusinessNo") == district
    assert (first.findtext("Hold1"), first.findtext("Hold2")) == ("芙财预〔2025〕7号", "区级财政配套资金")
    assert first.findtext("PayeeAcctName").startswith("示例企业")


def test_export_writes_the_format_asked_for_else_the_payers(tx, notified, tmp_path, t0) -> None:
    city, _, _ = _exported(tx, notified, tmp_path, t0)
    with tx() as s:  # the city's payer takes CSV; a treasury voucher has no division code to carry
        with pytest.raises(BankExportError, match="行政区划代码"):
            batches.export(s, city, "maker", tmp_path / "t", t0 + 5 * H, file_format="treasury")
        with pytest.raises(Exception, match="未知的文件格式"):
            batches.export(s, city, "maker", tmp_path / "t", t0 + 5 * H, file_format="swift")
        exported = batches.export(s, city, "maker", tmp_path / "c", t0 + 5 * H)
        assert exported.csv_path is not None and exported.voucher_path is None


def test_the_treasurys_answer_is_reconciled_like_the_banks(tx, notified, tmp_path, t0) -> None:
    _, district, _ = _exported(tx, notified, tmp_path, t0)
    with tx() as s:
        batch = batches.get_batch(s, district)
        content = batches.bank_file_of(s, batch)
        failed = content.lines[0]
        answer = vouchers.render_return(content, {failed.reference: "收款账户已冻结"})
        etree.XMLSchema(etree.parse(str(vouchers.RETURN_XSD))).assertValid(etree.fromstring(answer))
        result = batches.reconcile(s, district, io.BytesIO(answer), "maker", t0 + 6 * H, filename="回单.xml")
        assert (result.paid, result.failed, result.failures[0][1]) == (3, 1, "收款账户已冻结")
        assert result.paid_amount + result.failed_amount == batch.total
        assert batch.state == "reconciled"
        # The city has not paid its part yet: no offer is paid, the failed one failed.
        states = [o.state for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))]
        assert states.count("payment_failed") == 1 and "paid" not in states
        with pytest.raises(StateError, match="只有已导出的批次可以对账"):  # nothing is applied twice
            batches.reconcile(s, district, answer, "maker", t0 + 7 * H)


def test_a_treasury_answer_with_bad_fields_is_refused_naming_each_line(tx, notified, tmp_path, t0) -> None:
    _, district, _ = _exported(tx, notified, tmp_path, t0)
    with tx() as s:
        content = batches.bank_file_of(s, batches.get_batch(s, district))
    answer = vouchers.render_return(content, {}).decode("gbk")
    answer = answer.replace("<PayResult>成功</PayResult>", "<PayResult>处理中</PayResult>", 1)
    answer = answer.replace(f"<PayAmt>{content.lines[1].amount:.2f}</PayAmt>", "<PayAmt>12.345</PayAmt>")
    assert "<PayAmt>12.345</PayAmt>" in answer, answer
    with pytest.raises(BankFileError) as e, tx() as s:
        batches.reconcile(s, district, answer.encode("gbk"), "maker", t0 + 6 * H)
    assert "第 9 行：支付结果（PayResult）'处理中' 应为 成功 或 失败" in str(e.value)
    assert "金额（PayAmt）'12.345' 无效" in str(e.value)
    short = vouchers.render_return(content, {}).decode("gbk").replace("<VoucherCount>4<", "<VoucherCount>5<")
    with pytest.raises(BankFileError, match=r"声明 5 张凭证（VoucherCount），实有 4 张"), tx() as s:
        batches.reconcile(s, district, short.encode("gbk"), "maker", t0 + 6 * H)
    broken = answer.replace("<VoucherNo>", "<Voucher>", 1)
    with pytest.raises(BankFileError, match="不符合回单格式"), tx() as s:
        batches.reconcile(s, district, broken.encode("gbk"), "maker", t0 + 6 * H)


def _header(**changes) -> bankfiles.FileHeader:
    fields = {
        "reference": "ZDTEST0001",
        "created": dt.datetime(2025, 9, 30, 2, tzinfo=dt.UTC),
        "execution_date": dt.date(2025, 9, 30),
        "payer_name": "长沙市芙蓉区财政局",
        "payer_account": "430102000000000002",
        "payer_bank": "国家金库长沙市芙蓉区支库",
        "purpose": "稳岗返还（2025年度）",
        "count": 1,
        "total": Decimal("1.00"),
        "adm_div_code": "430102",
    }
    return bankfiles.FileHeader(**{**fields, **changes})


def test_a_name_outside_gbk_is_refused_naming_the_line_not_changed() -> None:
    line = bankfiles.FileLine(
        3, "ZL0003", "𠀾记餐饮有限公司", "4300150000000000003", "中国建设银行", Decimal("1.00")
    )
    with pytest.raises(BankExportError, match="第 3 行（业务参考号 ZL0003）含 GBK 无法表示的字符“𠀾”"):
        vouchers.write_vouchers(_header(), [line], io.BytesIO())


def test_a_voucher_the_schema_refuses_is_not_written() -> None:
    line = bankfiles.FileLine(1, "ZL0001", "示例企业", "4300150000000000001", "", Decimal("1.00"))
    with pytest.raises(BankExportError, match="不符合凭证格式"):
        vouchers.write_vouchers(_header(adm_div_code="43"), [line], io.BytesIO())


def test_pain001_validates_against_the_iso_20022_schema(tx, notified, tmp_path, t0) -> None:
    city, _, _ = _exported(tx, notified, tmp_path, t0)
    with tx() as s:
        exported = batches.export(s, city, "maker", tmp_path / "c", t0 + 5 * H)
    xsd = importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd"
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    schema.assertValid(etree.parse(str(exported.xml_path)))


def test_the_finance_split_is_what_the_vouchers_carry(tx, notified, tmp_path, t0) -> None:
    _, district, exported = _exported(tx, notified, tmp_path, t0)
    root = etree.fromstring(exported.voucher_path.read_bytes())
    with tx() as s:
        by_reference = {
            ln.reference: ln.amount for ln in batches.file_lines(s, batches.get_batch(s, district))
        }
        for body in root.iter("Voucher"):
            offer_amount = s.scalar(
                select(Offer.amount)
                .join_from(Offer, batches.BatchLine, batches.BatchLine.offer_id == Offer.id)
                .where(batches.BatchLine.reference == body.findtext("VoucherNo"))
            )
            assert Decimal(body.findtext("PayAmt")) == finance.split(offer_amount, [2, 1])[1]
            assert by_reference[body.findtext("VoucherNo")] == Decimal(body.findtext("PayAmt"))


def test_the_banks_pain002_status_report_is_reconciled_like_its_csv(tx, notified, tmp_path, t0) -> None:
    city, _, _ = _exported(tx, notified, tmp_path, t0)
    with tx() as s:
        batches.export(s, city, "maker", tmp_path / "c", t0 + 5 * H)
        content = batches.bank_file_of(s, batches.get_batch(s, city))
    report = bankfiles.render_pain002(content, {content.lines[2].reference: "账户已销户"}).decode()
    pending = report.replace("<TxSts>ACSC</TxSts>", "<TxSts>ACSP</TxSts>", 1)
    with pytest.raises(BankFileError, match=r"交易状态（TxSts）'ACSP' 不是终态") as e, tx() as s:
        batches.reconcile(s, city, pending.encode(), "maker", t0 + 6 * H)
    assert re.search(r"第 \d+ 行", str(e.value))
    with tx() as s:
        result = batches.reconcile(s, city, io.BytesIO(report.encode()), "maker", t0 + 6 * H)
        assert (result.paid, result.failed, result.failures[0][1]) == (3, 1, "账户已销户")
        assert batches.get_batch(s, city).state == "reconciled"
