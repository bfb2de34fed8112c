"""The treasury's electronic payment voucher (国库集中支付电子凭证, interface V2.0) and its answer.

A payer account whose format is `treasury` (payouts.finance) is paid through the treasury: each line of
a batch becomes one voucher of type 3403 (one payee per voucher, as the format says), and a batch is one
GBK-encoded file holding its vouchers in the voucher library's envelope:

```
<MOF><VoucherCount>n</VoucherCount>
  <VoucherBody AdmDivCode=… StYear=… VtCode="3403" VoucherNo=…><Voucher>…</Voucher></VoucherBody> …
</MOF>
```

Every voucher is checked against `schemas/treasury_voucher.xsd` (written from the public element list;
what it assumes is in docs/contracts.md) before it is written, and a file that cannot be written
exactly (a name outside GBK, an unsafe name, a missing administrative division) is refused naming the
line. Like the bank files, the same batch always gives the same bytes, streamed a chunk at a time.

The treasury's answer (`schemas/treasury_return.xsd`) is read streamed (`read_return`), checked against
its schema as it is parsed, and reconciled like the bank's CSV return file (payouts.batches.reconcile).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

from lxml import etree

from payouts import bankfiles
from payouts.bankfiles import FileHeader, FileLine, ReturnLine, ReturnProblems
from payouts.errors import BankExportError, BankFileError

SCHEMAS = Path(__file__).parent / "schemas"
VOUCHER_XSD = SCHEMAS / "treasury_voucher.xsd"
RETURN_XSD = SCHEMAS / "treasury_return.xsd"
VT_CODE = "3403"  # the voucher type of the public template: a payment to one payee
ENCODING = "GBK"  # what the interface declares
_schemas: dict[Path, etree.XMLSchema] = {}


def schema(path: Path = VOUCHER_XSD) -> etree.XMLSchema:
    """The XML schema at `path`, loaded once."""
    if path not in _schemas:
        _schemas[path] = etree.XMLSchema(etree.parse(str(path)))
    return _schemas[path]


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _fields(header: FileHeader, ln: FileLine) -> list[tuple[str, str]]:
    """One voucher's elements, in the order of the format (optional ones only when there is a value)."""
    assert header.adm_div_code is not None
    date = header.execution_date
    fields = [
        ("Id", ln.reference),
        ("AdmDivCode", header.adm_div_code),
        ("StYear", f"{date.year:04d}"),
        ("VtCode", VT_CODE),
        ("VouDate", date.strftime("%Y%m%d")),
        ("VoucherNo", ln.reference),
        ("PayeeAcctNo", ln.account_no),
        ("PayeeAcctName", ln.account_name),
        ("PayeeAcctBankName", ln.bank_name),
        ("PayAcctNo", header.payer_account),
        ("PayAcctName", header.payer_name),
        ("PayAcctBankName", header.payer_bank),
        ("PaySummaryName", header.purpose),
        ("PayAmt", _money(ln.amount)),
        ("AgentBusinessNo", header.reference),
        ("Hold1", header.budget_no or ""),
        ("Hold2", header.fund_source or ""),
    ]
    return [(k, v) for k, v in fields if v]


def _voucher(header: FileHeader, ln: FileLine, check: etree.XMLSchema) -> str:
    """One VoucherBody (with its Voucher), indented as the second level of the file, checked against the
    voucher schema; BankExportError naming the line when it cannot be written exactly."""
    bankfiles.check_line(ln)
    fields = _fields(header, ln)
    voucher = etree.Element("Voucher")
    for name, value in fields:
        etree.SubElement(voucher, name).text = value
    if not check.validate(voucher):
        error = check.error_log.last_error
        raise BankExportError(
            f"第 {ln.line_no} 行（业务参考号 {ln.reference}）的国库支付凭证不符合凭证格式：{error.message}"
        )
    inner = "".join(f"\n      <{k}>{escape(v)}</{k}>" for k, v in fields)
    text = (
        f'\n  <VoucherBody AdmDivCode="{header.adm_div_code}" StYear="{header.execution_date.year:04d}" '
        f'VtCode="{VT_CODE}" VoucherNo="{escape(ln.reference)}">\n    <Voucher>{inner}\n    </Voucher>'
        "\n  </VoucherBody>"
    )
    try:
        text.encode(ENCODING)
    except UnicodeEncodeError as e:
        raise BankExportError(
            f"第 {ln.line_no} 行（业务参考号 {ln.reference}）含 GBK 无法表示的字符“{e.object[e.start : e.end]}”，"
            "不能写入国库支付凭证；请核实更正该企业的账户名称后重新组批"
        ) from None
    return text


def write_vouchers(
    header: FileHeader, lines: Iterable[FileLine], out: BinaryIO, *, chunk: int = 10_000
) -> None:
    """The batch's vouchers, one per line, written to `out` as the lines come (GBK)."""
    if header.adm_div_code is None:
        raise BankExportError(
            f"批次 {header.reference} 的付款账户没有行政区划代码，不能生成国库支付凭证："
            "请财政部门在付款账户中填写（如 430102）后重新组批"
        )
    check = schema()
    out.write(
        f'<?xml version="1.0" encoding="{ENCODING}"?>\n<MOF>\n  <VoucherCount>{header.count}</VoucherCount>'.encode(
            ENCODING
        )
    )
    parts: list[str] = []
    for n, ln in enumerate(lines, start=1):
        parts.append(_voucher(header, ln, check))
        if n % chunk == 0:
            out.write("".join(parts).encode(ENCODING))
            parts.clear()
    out.write(("".join(parts) + "\n</MOF>\n").encode(ENCODING))


def render_vouchers(batch: bankfiles.BatchFile, adm_div_code: str, **header: str | None) -> bytes:
    """A whole (small) batch's voucher file at once, for the simulated treasury and the tests."""
    out = io.BytesIO()
    head = batch.header()
    write_vouchers(FileHeader(**{**head.__dict__, "adm_div_code": adm_div_code, **header}), batch.lines, out)
    return out.getvalue()


def write_return(
    reference: str, lines: Iterable[FileLine], failed: Callable[[FileLine], str | None], out: BinaryIO
) -> None:
    """The treasury's answer as the simulated treasury sends it, streamed (GBK): every voucher paid,
    except those for which `failed` gives a reason."""
    body: list[str] = []
    count = 0
    for ln in lines:
        count += 1
        reason = failed(ln)
        body.append(
            f"\n  <ReturnVoucher>\n    <VoucherNo>{escape(ln.reference)}</VoucherNo>\n"
            f"    <AgentBusinessNo>{escape(reference)}</AgentBusinessNo>\n"
            f"    <PayeeAcctNo>{escape(ln.account_no)}</PayeeAcctNo>\n    <PayAmt>{_money(ln.amount)}</PayAmt>\n"
            f"    <PayResult>{'失败' if reason else '成功'}</PayResult>"
            + (f"\n    <PayMsg>{escape(reason)}</PayMsg>" if reason else "")
            + "\n  </ReturnVoucher>"
        )
    out.write(
        (
            f'<?xml version="1.0" encoding="{ENCODING}"?>\n<MOF>\n  <VoucherCount>{count}</VoucherCount>'
            + "".join(body)
            + "\n</MOF>\n"
        ).encode(ENCODING)
    )


def render_return(batch: bankfiles.BatchFile, failures: dict[str, str]) -> bytes:
    """The treasury's answer to a batch: every voucher paid, except `failures` (reference → reason)."""
    out = io.BytesIO()
    write_return(batch.reference, batch.lines, lambda ln: failures.get(ln.reference), out)
    return out.getvalue()


def read_return(source: BinaryIO, problems: ReturnProblems) -> tuple[str, Iterator[list[ReturnLine]]]:
    """Read the treasury's answer in chunks of `bankfiles.RETURN_CHUNK` vouchers, streamed and checked
    against its schema as it is parsed: the batch reference and the chunks, as `bankfiles.read_return`
    gives them. A problem of a field (an amount, a result, a missing reason, another batch) is added to
    `problems` naming the line of the file; a file that breaks the schema is refused at once."""
    parser = etree.iterparse(
        source,
        events=("end",),
        tag=("VoucherCount", "ReturnVoucher"),
        schema=schema(RETURN_XSD),
        huge_tree=True,
    )
    declared: list[int] = []  # the answer's VoucherCount, which must equal the vouchers in it

    def vouchers() -> Iterator[tuple[dict[str, int], dict[str, str]]]:
        try:
            for _, element in parser:
                if element.tag == "VoucherCount":
                    declared.append(int((element.text or "0").strip() or 0))
                    continue
                values = {child.tag: (child.text or "").strip() for child in element}
                rows = {child.tag: child.sourceline or 0 for child in element}
                yield {**rows, "": element.sourceline or 0}, values
                element.clear(keep_tail=True)
                while element.getprevious() is not None:
                    del element.getparent()[0]
        except etree.XMLSyntaxError as e:
            raise BankFileError(f"国库回单不符合回单格式（第 {e.lineno} 行）：{e.msg}") from None

    stream = vouchers()
    first = next(stream, None)
    if first is None:
        raise BankFileError("国库回单没有凭证")
    batch_reference = first[1].get("AgentBusinessNo", "")

    def chunks() -> Iterator[list[ReturnLine]]:
        chunk: list[ReturnLine] = []
        others: set[str] = set()
        count = 0
        for rows, v in itertools.chain([first], stream):
            count += 1
            row = rows[""]
            batch_ref = v.get("AgentBusinessNo", "")
            if batch_ref != batch_reference and batch_ref not in others:
                others.add(batch_ref)
                problems.add(f"国库回单包含多个批次：{batch_reference}、{batch_ref}")
            amount_text = v.get("PayAmt", "")
            try:
                amount = Decimal(amount_text)
                if amount != amount.quantize(Decimal("0.01")) or amount <= 0:
                    raise InvalidOperation
            except InvalidOperation:
                problems.add(
                    f"第 {rows.get('PayAmt', row)} 行：金额（PayAmt）{amount_text!r} 无效，应为元，两位小数"
                )
                continue
            paid = bankfiles.PAID_WORDS.get(v.get("PayResult", "").lower())
            if paid is None:
                problems.add(
                    f"第 {rows.get('PayResult', row)} 行：支付结果（PayResult）{v.get('PayResult')!r} 应为 成功 或 失败"
                )
                continue
            reason = v.get("PayMsg", "")
            if not paid and not reason:
                problems.add(f"第 {rows.get('PayResult', row)} 行：失败的凭证必须有失败原因（PayMsg）")
            chunk.append(
                ReturnLine(
                    row,
                    v.get("VoucherNo", ""),
                    v.get("PayeeAcctNo", ""),
                    amount.quantize(Decimal("0.01")),
                    paid,
                    reason,
                )
            )
            if len(chunk) >= bankfiles.RETURN_CHUNK:
                yield chunk
                chunk = []
        if declared and declared[0] != count:
            problems.add(
                f"国库回单声明 {declared[0]} 张凭证（VoucherCount），实有 {count} 张：回单不完整或有多余凭证"
            )
        if chunk:
            yield chunk

    return batch_reference, chunks()
