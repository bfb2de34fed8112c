"""Bank files: the batch transfer CSV (批量代发), ISO 20022 pain.001.001.09, and the bank's return file.

The CSV is opened by finance staff in Chinese Excel (or WPS) before it is uploaded, so it must read right
there as it is: UTF-8 with a byte-order mark by default (without one, Excel reads the ANSI code page,
GBK, and every Chinese name is garbled), or GB18030 without a mark for a bank whose upload wants it
(`ZHIDA_BANK_CSV_ENCODING`, a deployment setting: one payer, one bank). Account numbers are written
after a tab (`account_text`), so that Excel keeps them as text instead of 1.03669E+18 with the last
digits lost; see docs/operations.md#bank-files for why a tab and not `="…"`.

Pure functions over plain records: the same batch always renders to the same bytes (no clock, no
randomness here; the creation time is the batch's approval time). Totals and counts are in the header
of both files.

The return file (回单) is a CSV with the header `批次号,业务参考号,收款账号,金额,状态,失败原因`;
状态 is 成功 or 失败 (also accepted: paid/failed, S/F). `write_return` (streamed) and
`render_return` write one, for the simulated bank of the demo and the tests.

A bank file carries the payee's name exactly, so a name that a spreadsheet would run as a formula
(starting with = + - @, tab or CR), that holds control or invisible formatting characters, or that is
longer than pain.001 allows (`NAME_MAX`) cannot be written: `name_problem` says why, the import holds
such offers (`payouts.imports`), and the writers refuse, naming the line, rather than change a name.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from payouts.errors import BankExportError, BankFileError
from rules.formats import CHINA

PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
CURRENCY = "CNY"
NAME_MAX = 140  # pain.001 Max140Text: names of payees, banks and the payer, and the purpose
ACCOUNT_MAX = 34  # pain.001 Max34Text: account numbers
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters (C0, DEL, C1) and invisible formatting ones (zero width, bidirectional overrides,
# BOM): a name holding one is not what the bank's clerk or the enterprise would read.
_CONTROL = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0xFEFF, 0xFEFF),
)
CONTROL_RE = re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in _CONTROL) + "]")
# The same test as one RE2 pattern, for Arrow's vectorised regex over a whole import.
UNSAFE_NAME_RE2 = "^[=+\\-@\\t\\r]|[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in _CONTROL) + "]"
CSV_COLUMNS = (
    "序号",
    "付款账号",
    "付款户名",
    "收款账号",
    "收款户名",
    "收款开户行",
    "金额",
    "用途",
    "业务参考号",
)
ENCODINGS = ("utf-8-sig", "gb18030")  # the CSV's: UTF-8 with a BOM (default), or GB18030 for a bank that asks
BOM = "\ufeff"
RETURN_COLUMNS = ("批次号", "业务参考号", "收款账号", "金额", "状态", "失败原因")
PAID_WORDS = {"成功": True, "paid": True, "s": True, "失败": False, "failed": False, "f": False}


@dataclass(frozen=True)
class FileLine:
    """One transfer as the bank sees it."""

    line_no: int
    reference: str
    account_name: str
    account_no: str
    bank_name: str
    amount: Decimal


@dataclass(frozen=True)
class FileHeader:
    """What a bank file says before its transfers: the batch, who pays, when, why, how many, how much."""

    reference: str
    created: dt.datetime
    execution_date: dt.date
    payer_name: str
    payer_account: str
    payer_bank: str
    purpose: str
    count: int
    total: Decimal


@dataclass(frozen=True)
class BatchFile:
    """A batch as the bank sees it: who pays, when, why, and the transfers."""

    reference: str
    created: dt.datetime
    execution_date: dt.date
    payer_name: str
    payer_account: str
    payer_bank: str
    purpose: str
    lines: Sequence[FileLine]

    @property
    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), Decimal("0.00"))

    def header(self) -> FileHeader:
        return FileHeader(
            self.reference,
            self.created,
            self.execution_date,
            self.payer_name,
            self.payer_account,
            self.payer_bank,
            self.purpose,
            len(self.lines),
            self.total,
        )


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def account_text(account_no: str) -> str:
    """An account number as the CSV writes it: after a tab, so that Excel shows it as text, every digit
    kept. A bank's upload trims the blanks around a field as it trims the padding of any field, so the
    number it reads is the same; `="…"` would reach it as an equals sign and quotes."""
    return "\t" + account_no if account_no else ""


def plain_account(cell: str) -> str:
    """An account number read back from a CSV cell: without the tab `account_text` adds, or the blanks and
    the `="…"` form a spreadsheet may have left in a return file."""
    text = cell.strip()
    if text.startswith('="') and text.endswith('"'):
        text = text[2:-1].replace('""', '"').strip()
    return text


def render_csv(batch: BatchFile, encoding: str = ENCODINGS[0]) -> bytes:
    """The batch transfer CSV: a header row with the batch, count and total, then one row per transfer."""
    out = io.BytesIO()
    write_csv(batch.header(), batch.lines, out, encoding=encoding)
    return out.getvalue()


def write_csv(
    header: FileHeader,
    lines: Iterable[FileLine],
    out: BinaryIO,
    *,
    chunk: int = 10_000,
    encoding: str = ENCODINGS[0],
) -> None:
    """`render_csv`, written to `out` as the lines come (a chunk at a time), for batches of any size.

    `encoding` is one of `ENCODINGS`: UTF-8 after a byte-order mark (written once, at the start), or
    GB18030 (no mark: Excel reads it as the Chinese code page it is)."""
    if encoding not in ENCODINGS:
        raise BankExportError(f"银行文件编码 {encoding} 不受支持，应为 {' 或 '.join(ENCODINGS)}")
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    buf = io.StringIO()
    if encoding == "utf-8-sig":
        buf.write(BOM)
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(
        [
            "批次号",
            header.reference,
            "总笔数",
            header.count,
            "总金额",
            _money(header.total),
            "币种",
            CURRENCY,
            "付款账号",
            account_text(header.payer_account),
            "付款户名",
            header.payer_name,
            "付款开户行",
            header.payer_bank,
            "执行日期",
            header.execution_date.isoformat(),
        ]
    )
    w.writerow(CSV_COLUMNS)
    for n, ln in enumerate(lines, start=1):
        _line_names(ln)
        w.writerow(
            [
                ln.line_no,
                account_text(header.payer_account),
                header.payer_name,
                account_text(ln.account_no),
                ln.account_name,
                ln.bank_name,
                _money(ln.amount),
                header.purpose,
                ln.reference,
            ]
        )
        if n % chunk == 0:
            out.write(buf.getvalue().encode(codec))
            buf.seek(0)
            buf.truncate()
    out.write(buf.getvalue().encode(codec))


def _sub(parent: ET.Element, path: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Add the chain of elements `path` ("A/B/C") under `parent`; the last gets `text` and `attrs`."""
    node = parent
    for name in path.split("/"):
        node = ET.SubElement(node, name)
    node.attrib.update(attrs)
    if text is not None:
        node.text = text
    return node


def name_problem(text: str | None, *, required: bool = True) -> str | None:
    """Why a name cannot go into a bank file exactly as it is (in Chinese, for the hold reason or the
    error), or None when it can; an empty name is a problem only when it is `required` (the payee's)."""
    if text is None or not text.strip():
        return "为空" if required else None
    if text.startswith(FORMULA_START):
        return f"以“{_shown(text[0])}”开头（表格软件会当作公式执行）"
    if found := CONTROL_RE.search(text):
        return f"含控制字符或不可见字符 U+{ord(found.group()):04X}（第 {found.start() + 1} 个字符）"
    if len(text) > NAME_MAX:
        return f"长 {len(text)} 个字符，超过银行文件（pain.001）的上限 {NAME_MAX} 个字符"
    return None


def _shown(char: str) -> str:
    return {"\t": "制表符", "\r": "回车符"}.get(char, char)


def _line_names(ln: FileLine) -> None:
    """BankExportError naming the line when its payee or bank name cannot be written exactly."""
    for what, text, required in (("收款户名", ln.account_name, True), ("收款开户行", ln.bank_name, False)):
        if problem := name_problem(text, required=required):
            raise BankExportError(
                f"第 {ln.line_no} 行（业务参考号 {ln.reference}）的{what}{problem}，不能原样写入银行文件；"
                "请核实更正该企业的账户后重新组批"
            )
    if len(ln.account_no) > ACCOUNT_MAX:
        raise BankExportError(
            f"第 {ln.line_no} 行（业务参考号 {ln.reference}）的收款账号超过 {ACCOUNT_MAX} 位，不能写入银行文件"
        )


def _max(text: str, n: int, what: str) -> str:
    """`text` as it is, or BankExportError: a bank file never carries a silently shortened text."""
    if len(text) > n:
        raise BankExportError(f"{what}长 {len(text)} 个字符，超过银行文件（pain.001）的上限 {n} 个，不能截断")
    return text


def render_pain001(batch: BatchFile) -> bytes:
    """The batch as an ISO 20022 customer credit transfer initiation, pain.001.001.09."""
    out = io.BytesIO()
    write_pain001(batch.header(), batch.lines, out)
    return out.getvalue()


_LAST_BEFORE_TRANSFERS = b"<ChrgBr>DEBT</ChrgBr>"


def write_pain001(
    header: FileHeader, lines: Iterable[FileLine], out: BinaryIO, *, chunk: int = 10_000
) -> None:
    """`render_pain001`, written to `out` as the lines come, for batches of any size.

    The document around the transfers is made by ElementTree (indented, as a whole document would
    be); each transfer is written from a template with ElementTree's escaping, and a test checks that
    the result equals the document ElementTree makes with every transfer in it.
    """
    doc = ET.Element("Document", xmlns=PAIN001)
    root = _sub(doc, "CstmrCdtTrfInitn")
    group = _sub(root, "GrpHdr")
    _sub(group, "MsgId", header.reference)
    _sub(group, "CreDtTm", header.created.astimezone(CHINA).replace(microsecond=0).isoformat())
    _sub(group, "NbOfTxs", str(header.count))
    _sub(group, "CtrlSum", _money(header.total))
    _sub(group, "InitgPty/Nm", _max(header.payer_name, NAME_MAX, "付款户名"))
    info = _sub(root, "PmtInf")
    _sub(info, "PmtInfId", header.reference)
    _sub(info, "PmtMtd", "TRF")
    _sub(info, "BtchBookg", "false")
    _sub(info, "NbOfTxs", str(header.count))
    _sub(info, "CtrlSum", _money(header.total))
    _sub(info, "PmtTpInf/CtgyPurp/Cd", "GOVT")
    _sub(info, "ReqdExctnDt/Dt", header.execution_date.isoformat())
    _sub(info, "Dbtr/Nm", _max(header.payer_name, NAME_MAX, "付款户名"))
    debtor_account = _sub(info, "DbtrAcct")
    _sub(debtor_account, "Id/Othr/Id", _max(header.payer_account, ACCOUNT_MAX, "付款账号"))
    _sub(debtor_account, "Ccy", CURRENCY)
    _sub(info, "DbtrAgt/FinInstnId/Nm", _max(header.payer_bank, NAME_MAX, "付款开户行"))
    _sub(info, "ChrgBr", "DEBT")
    ET.indent(doc)
    whole = ET.tostring(doc, encoding="UTF-8", xml_declaration=True) + b"\n"
    cut = whole.index(_LAST_BEFORE_TRANSFERS) + len(_LAST_BEFORE_TRANSFERS)
    out.write(whole[:cut])
    purpose = _text("Ustrd", _max(header.purpose, NAME_MAX, "用途"))
    parts: list[str] = []
    for n, ln in enumerate(lines, start=1):
        parts.append(_transfer(ln, purpose))
        if n % chunk == 0:
            out.write("".join(parts).encode("utf-8"))
            parts.clear()
    out.write("".join(parts).encode("utf-8"))
    out.write(whole[cut:])


def _escape(text: str) -> str:
    """Text content escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _text(tag: str, text: str) -> str:
    """A leaf element as ElementTree writes it (`<Tag />` when it has no text)."""
    return f"<{tag}>{_escape(text)}</{tag}>" if text else f"<{tag} />"


def _transfer(ln: FileLine, purpose: str) -> str:
    """One CdtTrfTxInf element, indented as the third level of the document, with the newline before it."""
    _line_names(ln)
    i = "\n" + " " * 8
    return (
        f"\n      <CdtTrfTxInf>{i}<PmtId>{i}  <InstrId>{ln.line_no}</InstrId>{i}  "
        f"{_text('EndToEndId', ln.reference)}{i}</PmtId>{i}<Amt>{i}  "
        f'<InstdAmt Ccy="{CURRENCY}">{_money(ln.amount)}</InstdAmt>{i}</Amt>{i}<CdtrAgt>{i}  '
        f"<FinInstnId>{i}    {_text('Nm', ln.bank_name)}{i}  </FinInstnId>{i}</CdtrAgt>{i}"
        f"<Cdtr>{i}  {_text('Nm', ln.account_name)}{i}</Cdtr>{i}<CdtrAcct>{i}  <Id>{i}    "
        f"<Othr>{i}      {_text('Id', ln.account_no)}{i}    </Othr>{i}  </Id>{i}</CdtrAcct>{i}"
        f"<Purp>{i}  <Cd>GOVT</Cd>{i}</Purp>{i}<RmtInf>{i}  {purpose}{i}</RmtInf>\n      </CdtTrfTxInf>"
    )


@dataclass(frozen=True)
class ReturnLine:
    """One line of a bank return file: which transfer, and whether the bank paid it."""

    row: int
    reference: str
    account_no: str
    amount: Decimal
    paid: bool
    reason: str


@dataclass(frozen=True)
class ReturnFile:
    """A parsed bank return file, all of one batch."""

    batch_reference: str
    lines: list[ReturnLine]


RETURN_CHUNK = 20_000  # lines of a return file held at once
PROBLEMS_SHOWN = 50  # problems of a malformed return file listed; the rest are counted
_READ = 1 << 20


def return_digest(source: BinaryIO) -> tuple[str, str]:
    """One streamed pass over a return file: its SHA-256 and its encoding (UTF-8, else GB18030).
    Leaves the stream at its start."""
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()
    encoding = "utf-8-sig"
    source.seek(0)
    while block := source.read(_READ):
        digest.update(block)
        if encoding == "utf-8-sig":
            try:
                utf8.decode(block)
            except UnicodeDecodeError:
                encoding = "gb18030"
    if encoding == "utf-8-sig":
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            encoding = "gb18030"
    source.seek(0)
    return digest.hexdigest(), encoding


@dataclass
class ReturnProblems:
    """What is wrong with a return file being read: the first `PROBLEMS_SHOWN` listed, all counted."""

    shown: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, problem: str) -> None:
        self.count += 1
        if len(self.shown) < PROBLEMS_SHOWN:
            self.shown.append(problem)

    def text(self) -> str:
        more = self.count - len(self.shown)
        return "\n".join([f"- {p}" for p in self.shown] + ([f"- 另有 {more} 处问题未列出"] if more else []))


def _text_lines(source: BinaryIO, encoding: str) -> Iterator[str]:
    """The lines of a binary stream, decoded as they are read (the stream is not closed)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    rest = ""
    while block := source.read(_READ):
        *whole, rest = (rest + decoder.decode(block)).split("\n")
        for line in whole:
            yield line + "\n"
    rest += decoder.decode(b"", final=True)
    if rest:
        yield rest


def read_return(
    source: BinaryIO, encoding: str, problems: ReturnProblems
) -> tuple[str, Iterator[list[ReturnLine]]]:
    """Read a bank return file in chunks of `RETURN_CHUNK` lines: its batch reference and the chunks.

    The header is checked at once; every other problem (an amount, a status, a missing reason, a line of
    another batch) is added to `problems` as the lines are read, so that the caller refuses the file once
    it has read it all. Memory is bounded by the chunk, whatever the file's size.
    """
    reader = csv.reader(_text_lines(source, encoding))
    header = next((r for r in reader if any(c.strip() for c in r)), None)
    if header is None or tuple(c.strip() for c in header[: len(RETURN_COLUMNS)]) != RETURN_COLUMNS:
        raise BankFileError(f"回单表头应为：{','.join(RETURN_COLUMNS)}")
    first = next((r for r in reader if any(c.strip() for c in r)), None)
    if first is None:
        raise BankFileError("回单没有明细")
    batch_reference = first[0].strip()

    def chunks() -> Iterator[list[ReturnLine]]:
        chunk: list[ReturnLine] = []
        others: set[str] = set()
        rows = itertools.chain([first], reader)
        for raw in rows:
            if not any(cell.strip() for cell in raw):
                continue
            n = reader.line_num
            cells = [c.strip() for c in raw] + [""] * len(RETURN_COLUMNS)
            batch_ref, reference, account, amount_text, status, reason = cells[: len(RETURN_COLUMNS)]
            account = plain_account(account)
            if batch_ref != batch_reference and batch_ref not in others:
                others.add(batch_ref)
                problems.add(f"回单包含多个批次：{batch_reference}、{batch_ref}")
            try:
                amount = Decimal(amount_text)
                if amount != amount.quantize(Decimal("0.01")) or amount <= 0:
                    raise InvalidOperation
            except InvalidOperation:
                problems.add(f"第 {n} 行：金额 {amount_text!r} 无效")
                continue
            paid = PAID_WORDS.get(status.lower())
            if paid is None:
                problems.add(f"第 {n} 行：状态 {status!r} 应为 成功 或 失败")
                continue
            if not paid and not reason:
                problems.add(f"第 {n} 行：失败的明细必须有失败原因")
            chunk.append(ReturnLine(n, reference, account, amount.quantize(Decimal("0.01")), paid, reason))
            if len(chunk) >= RETURN_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    return batch_reference, chunks()


def parse_return(data: bytes) -> ReturnFile:
    """A whole (small) return file read at once; refuses a malformed one with its problems listed."""
    source = io.BytesIO(data)
    _, encoding = return_digest(source)
    problems = ReturnProblems()
    try:
        reference, chunks = read_return(source, encoding, problems)
        lines = [x for chunk in chunks for x in chunk]
    except UnicodeDecodeError:
        raise BankFileError("回单编码无法识别（应为 UTF-8 或 GB18030）") from None
    if problems.count:
        raise BankFileError("回单格式错误：\n" + problems.text())
    return ReturnFile(reference, lines)


def write_return(
    reference: str, lines: Iterable[FileLine], failed: Callable[[FileLine], str | None], out: BinaryIO
) -> None:
    """A return file as the bank would send it, streamed: every line paid, except those for which
    `failed` gives a reason."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    w = csv.writer(text, lineterminator="\r\n")
    w.writerow(RETURN_COLUMNS)
    for ln in lines:
        reason = failed(ln)
        w.writerow(
            [
                reference,
                ln.reference,
                ln.account_no,
                _money(ln.amount),
                "失败" if reason else "成功",
                reason or "",
            ]
        )
    text.flush()
    text.detach()


def render_return(batch: BatchFile, failures: dict[str, str]) -> bytes:
    """A return file as the bank would send it: every line paid, except `failures` (reference → reason)."""
    out = io.BytesIO()
    write_return(batch.reference, batch.lines, lambda ln: failures.get(ln.reference), out)
    return out.getvalue()
