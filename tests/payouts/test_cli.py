"""The CLI for the whole flow: import, release, SMS, confirm, batch, approve, export, reconcile, verify."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.commands import audit as audit_cmd
from api.commands import batch as batch_cmd
from api.commands import offers as offers_cmd
from api.commands import sms as sms_cmd
from payouts import stafftokens
from payouts.db import PayoutSettings, transaction
from payouts.errors import RoleError

LINK = re.compile(re.escape(PayoutSettings().link_base) + r"([A-Za-z0-9_-]{22})")


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch):
    """Invoke a `zhida` sub-command against the test database; fails the test on an unexpected error."""
    monkeypatch.setenv("ZHIDA_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("ZHIDA_LINK_BASE", raising=False)
    monkeypatch.delenv(stafftokens.TOKEN_ENV, raising=False)
    runner = CliRunner()
    tokens: dict[str, str] = {}

    def invoke(app, *args: str, user: str | None = None, ok: bool = True):
        """`user` acts through a staff token of their own (as `zhida users token` issues)."""
        if user and user not in tokens:
            with transaction(engine) as s:
                tokens[user] = stafftokens.issue(s, user, dt.datetime.now(dt.UTC))
        env = {stafftokens.TOKEN_ENV: tokens[user]} if user else {}
        result = runner.invoke(app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


def _bank_return(exported_csv: Path) -> str:
    """What the bank sends back for an exported CSV: every transfer paid."""
    rows = list(csv.reader(io.StringIO(exported_csv.read_text(encoding="utf-8"))))
    batch = rows[0][1]
    out = ["批次号,业务参考号,收款账号,金额,状态,失败原因"]
    out += [f"{batch},{r[8]},{r[3]},{r[6]},成功," for r in rows[2:]]
    return "\r\n".join(out) + "\r\n"


def confirmed(cli, app, *args: str, user: str | None = None):
    """A bulk command as a script runs it: refused without a terminal until it repeats the count and
    total the command showed."""
    shown = cli(app, *args, user=user, ok=False)
    assert shown.exit_code == 2, shown.output
    expect = re.search(r"--expect-count (\d+) --expect-total ([\d.]+)", shown.output)
    assert expect, shown.output
    return cli(app, *args, "--expect-count", expect.group(1), "--expect-total", expect.group(2), user=user)


def test_the_whole_flow_from_the_command_line(cli, small_run: Path, tmp_path: Path) -> None:
    assert "已导入匹配批次" in cli(offers_cmd.app, "import", str(small_run), user="rev").output
    assert (
        "已发布 4 条，直接确认 1 条，因无联系电话暂缓 1 条"
        in confirmed(cli, offers_cmd.app, "release", "--all", user="rev").output
    )
    sent = confirmed(cli, sms_cmd.app, "send", "--all", "--show-links", user="rev").output
    assert "确认短信：发送 4 条" in sent
    tokens = LINK.findall(sent)
    assert len(tokens) == 4
    for token in tokens:
        assert "已确认" in cli(offers_cmd.app, "confirm", token).output

    made = cli(batch_cmd.app, "create", "--policy", "wengang", user="maker").output
    reference = re.search(r"批次 (ZD[A-Z2-7]{16})", made).group(1)
    refused = cli(batch_cmd.app, "approve", reference, user="maker", ok=False)
    assert isinstance(refused.exception, RoleError)
    cli(batch_cmd.app, "approve", reference, user="checker")
    cli(batch_cmd.app, "export", reference, "--out", str(tmp_path / "bank"), user="maker")
    exported = tmp_path / "bank" / f"{reference}.csv"
    assert (tmp_path / "bank" / f"{reference}.xml").exists()
    returned = tmp_path / "return.csv"
    returned.write_text(_bank_return(exported), encoding="utf-8")
    done = cli(batch_cmd.app, "reconcile", reference, str(returned), user="checker").output
    assert "到账 4 笔 7,500.50 元，失败 0 笔" in done

    assert "审计日志完整" in cli(audit_cmd.app, "verify").output
    status = cli(offers_cmd.app, "status").output
    assert re.search(r"已到账\W+4\W+7,500\.50", status), status


def test_bulk_commands_act_only_on_what_was_named_and_confirmed(cli, small_run: Path) -> None:
    cli(offers_cmd.app, "import", str(small_run), user="rev")
    nothing = cli(offers_cmd.app, "release", user="rev", ok=False)
    assert nothing.exit_code == 2 and "--all" in nothing.output
    assert cli(sms_cmd.app, "send", ok=False).exit_code == 2
    shown = cli(offers_cmd.app, "release", "--all", user="rev", ok=False)
    assert "将发布的要约" in shown.output and "合计" in shown.output and "没有终端可以确认" in shown.output
    stale = cli(
        offers_cmd.app,
        "release",
        "--all",
        "--expect-count",
        "1",
        "--expect-total",
        "1.00",
        user="rev",
        ok=False,
    )
    assert "已有变化" in str(stale.exception)
    assert "已发布 4 条" in confirmed(cli, offers_cmd.app, "release", "--all", user="rev").output


def test_sms_output_masks_phones_and_links_unless_asked(cli, small_run: Path) -> None:
    cli(offers_cmd.app, "import", str(small_run), user="rev")
    confirmed(cli, offers_cmd.app, "release", "--all", user="rev")
    sent = confirmed(cli, sms_cmd.app, "send", "--all", user="rev").output
    assert "确认短信：发送 4 条" in sent
    assert re.findall(r"1[3-9]\d\*{4}\d{4}", sent) and not re.findall(r"(?<!\d)1[3-9]\d{9}(?!\d)", sent)
    assert LINK.findall(sent) == []  # no working link: tokens are cut to four characters


def test_a_queued_sms_wave_is_sent_by_a_worker_once(
    cli, engine: Engine, small_run: Path, tmp_path: Path
) -> None:
    from api.settings import Settings
    from api.worker import Worker, context
    from payouts.sms import MemoryGateway

    cli(offers_cmd.app, "import", str(small_run), user="rev")
    confirmed(cli, offers_cmd.app, "release", "--all", user="rev")
    queued = confirmed(cli, sms_cmd.app, "send", "--all", "--queue", user="rev").output
    assert "已排队：4 条确认短信由后台任务进程发送" in queued
    phone = MemoryGateway()
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False), data_dir=tmp_path / "web"
    )
    worker = Worker(context(engine, settings, phone), schedule={})
    assert worker.drain() == 1 and worker.drain() == 0
    assert len(phone.sent) == len({m.phone for m in phone.sent}) == 4


def test_finance_staff_set_who_pays_and_the_treasury_vouchers_total_the_batch(
    cli, small_run: Path, tmp_path: Path
) -> None:
    from lxml import etree

    from api.commands import finance as finance_cmd

    cli(offers_cmd.app, "import", str(small_run), user="rev")
    confirmed(cli, offers_cmd.app, "release", "--all", user="rev")
    sent = confirmed(cli, sms_cmd.app, "send", "--all", "--show-links", user="rev").output
    for token in LINK.findall(sent):
        cli(offers_cmd.app, "confirm", token)
    district = ("furong", "--name", "长沙市芙蓉区财政局", "--account", "430102000000000002")
    district += ("--bank", "国家金库长沙市芙蓉区支库", "--format", "treasury", "--adm-div", "430102")
    refused = cli(finance_cmd.app, "payer", *district, user="rev", ok=False)
    assert isinstance(refused.exception, RoleError)
    assert "已保存（第 1 版）" in cli(finance_cmd.app, "payer", *district, user="checker").output
    city = ("city", "--name", "长沙市财政局", "--account", "430001000000000001")
    cli(
        finance_cmd.app,
        "payer",
        *city,
        "--bank",
        "国家金库长沙市中心支库",
        "--format",
        "bank_csv",
        user="checker",
    )
    parts = ("--part", "city:1:市级财政专项资金:长财预〔2025〕101号:5,000.00")
    parts += ("--part", "furong:1:区级财政配套资金:芙财预〔2025〕7号")
    said = cli(finance_cmd.app, "funding", "wengang", *parts, user="checker").output
    assert "预算指标 长财预〔2025〕101号，指标金额 5,000.00元，余额 5,000.00元" in said.replace("\n", "")
    assert "区级财政配套资金" in cli(finance_cmd.app, "show", "wengang").output

    made = cli(batch_cmd.app, "create", "--policy", "wengang", user="maker").output
    references = re.findall(r"批次 (ZD[A-Z2-7]{16})：4 笔，3,750\.25 元", made)
    assert len(references) == 2, made
    for reference in references:
        cli(batch_cmd.app, "approve", reference, user="checker")
    out = tmp_path / "treasury"
    cli(batch_cmd.app, "export", references[1], "--format", "treasury", "--out", str(out), user="maker")
    root = etree.parse(str(out / f"{references[1]}.voucher.xml")).getroot()
    assert sum(Decimal(x) for x in root.xpath("//Voucher/PayAmt/text()")) == Decimal("3750.25")


def test_backfill_profile_names_a_run_whose_snapshot_is_gone_and_leaves_its_offers(
    cli, small_run: Path
) -> None:
    cli(offers_cmd.app, "import", str(small_run), user="rev")  # a run folder without industry and size
    out = cli(offers_cmd.app, "backfill-profile").output
    assert re.search(r"匹配批次 \w+：未补充。匹配结果目录 .*缺少", out.replace("\n", ""))
    again = cli(offers_cmd.app, "backfill-profile").output
    assert "未补充" in again  # still nothing to fill them from: named again, nothing changed


def test_a_td_reply_is_registered_and_other_replies_are_refused(cli, engine: Engine) -> None:
    from sqlalchemy import select

    from payouts.models import SmsOptOut

    assert "已登记退订" in cli(sms_cmd.app, "opt-out", "13800000001").output
    assert "此前已退订" in cli(sms_cmd.app, "opt-out", "13800000001", "--reply", "退订").output
    refused = cli(sms_cmd.app, "opt-out", "13800000002", "--reply", "好的", ok=False)
    assert refused.exit_code != 0 and "不是退订指令" in refused.output
    with transaction(engine) as s:
        assert list(s.scalars(select(SmsOptOut.phone))) == ["13800000001"]


def test_a_county_reviewer_lists_releases_and_batches_only_its_own_enterprises_from_the_command_line(
    cli, tx, regional_run: Path
) -> None:
    from sqlalchemy import select

    from payouts.errors import NotFoundError
    from payouts.imports import import_run
    from payouts.models import Offer
    from tests.payouts.conftest import uscc
    from tests.payouts.test_scope import T0, hierarchy

    with tx() as s:
        hierarchy(s)
        import_run(s, regional_run, "rev", T0)
    listed = cli(offers_cmd.app, "list", user="rev_furong").output
    amounts = re.findall(r"(\d),000\.00", listed)  # enterprise n is offered n,000.00 yuan
    assert sorted(amounts) == ["1", "2"], listed
    released = confirmed(cli, offers_cmd.app, "release", "--policy", "wengang", user="rev_furong").output
    assert "直接确认 2 条" in released and "合计 3,000.00 元" in released
    with tx() as s:
        states = dict(s.execute(select(Offer.uscc, Offer.state)).all())
    assert sorted(u for u, st in states.items() if st == "confirmed") == [uscc(1), uscc(2)]

    made = cli(batch_cmd.app, "create", "--policy", "wengang", user="maker_furong").output
    reference = re.search(r"批次 (ZD[A-Z2-7]{16})：2 笔，3,000\.00 元", made).group(1)
    assert reference not in cli(batch_cmd.app, "list", user="checker_tianxin").output
    refused = cli(batch_cmd.app, "approve", reference, user="checker_tianxin", ok=False)
    assert isinstance(refused.exception, NotFoundError)
    cli(batch_cmd.app, "approve", reference, user="checker_prov")


def test_the_system_administrator_adds_and_places_departments_from_the_command_line(cli, tx) -> None:
    from api.commands import departments as departments_cmd
    from payouts import users
    from tests.payouts.test_scope import T0

    with tx() as s:
        users.create_user(s, "admin", "system_admin", now=T0)
        users.create_user(
            s, "old", "reviewer", department="长沙市人力资源和社会保障局", carry_over=True, now=T0
        )
    province = ("湖南省人力资源和社会保障厅", "--level", "province", "--region", "430000")
    refused = cli(departments_cmd.app, "add", *province, user="rev", ok=False)
    assert isinstance(refused.exception, RoleError)
    assert "已新增部门" in cli(departments_cmd.app, "add", *province, user="admin").output
    city = ("长沙市人力资源和社会保障局", "--level", "city", "--region", "430100")
    placed = cli(
        departments_cmd.app, "set", *city, "--parent", "湖南省人力资源和社会保障厅", user="admin"
    ).output
    assert "市级" in placed and "长沙市（430100）" in placed
    listed = cli(departments_cmd.app, "list").output
    assert "湖南省人力资源" in listed and "省级" in listed and "430100" in listed  # names fold, never cut
