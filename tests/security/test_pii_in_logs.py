"""Attack (PIPL): personal data read from where it is not needed, the service log, a terminal's
scrollback, a demo's output. A full mobile number, an account number or a working link token there is a
leak.

The flows run with every zhida logger at DEBUG, written as the service writes its log (JSON lines);
the demo flow's report and the output of `zhida sms send` are searched too. Phones and accounts come
from the payee data; tokens from the messages the enterprises' phones received.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from api.app import JsonFormatter
from api.commands import offers as offers_cmd
from api.commands import sms as sms_cmd
from devtools.demo import demo_flow
from payouts import sms, stafftokens
from payouts.db import transaction
from payouts.models import Payee
from tests.api.conftest import World, confirm_offer, confirmed_batch, copy_world
from tests.api.test_enterprise import A, ask_code, enter_code

MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
LINK_TOKEN = re.compile(r"/c/([A-Za-z0-9_-]{5,})")  # a link with more of its token than the four shown


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """Every zhida log record at DEBUG, as the service's JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("zhida")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def _payee_data(engine: Engine) -> tuple[set[str], set[str]]:
    with transaction(engine) as s:
        rows = s.execute(select(Payee.contact_phone, Payee.account_no)).all()
    return {r[0] for r in rows if r[0]}, {r[1] for r in rows if r[1]}


def assert_no_pii(text: str, phones: set[str], accounts: set[str], tokens: set[str]) -> None:
    assert text.strip(), "nothing was captured: the search would prove nothing"
    assert phones and tokens
    assert not [p for p in phones if p in text], "a full phone number"
    assert not [a for a in accounts if a in text], "a full account number"
    assert not [t for t in tokens if t in text], "a working link token"
    assert not MOBILE.findall(text), f"a mobile number: {MOBILE.findall(text)[:3]}"
    assert not LINK_TOKEN.findall(text), f"a link token: {LINK_TOKEN.findall(text)[:3]}"


def _tokens(messages: list[Any]) -> set[str]:
    return {m.params["link"].rsplit("/", 1)[-1] for m in messages if m.params.get("link")}


def test_the_service_log_holds_no_phone_account_or_token(world: World, service_log: io.StringIO) -> None:
    # The whole enterprise-facing flow: SMS sent, a link opened and confirmed, a batch, a sign-in by code.
    confirmed_batch(world, "c-gaoxin")
    links = world.notify("c-kexing")
    confirm_offer(TestClient(world.app), links[0])
    client = TestClient(world.app)
    _, code = ask_code(world, client, A)
    assert code and enter_code(client, A, code).status_code == 303
    assert client.get("/e").status_code == 200
    phones, accounts = _payee_data(world.app.state.engine)
    tokens = _tokens(world.app.state.phone.sent)
    assert '"path": "/c/<token>' in service_log.getvalue()  # the links were logged, cut
    assert_no_pii(service_log.getvalue(), phones, accounts, tokens)


def test_the_outbox_echo_in_the_service_log_is_masked(
    template: Any, tmp_path: Path, service_log: io.StringIO
) -> None:
    w = copy_world(template, tmp_path, demo_phone=False)  # the real gateway: the outbox, echoed to the log
    chosen = {"filter": {"policy_id": "c-gaoxin"}}
    assert w.bulk("/api/review/release", "release", chosen).status_code == 200
    r = w.bulk("/api/sms/send", "notify", chosen)
    assert r.status_code == 200 and r.json()["sent"] > 0, r.text
    phones, accounts = _payee_data(w.app.state.engine)
    lines = [json.loads(x) for x in service_log.getvalue().splitlines()]
    echoed = [x for x in lines if x["msg"] == "sms"]
    assert echoed and all(re.fullmatch(r"1\d\d\*{4}\d{4}", x["to"]) for x in echoed)
    assert_no_pii(service_log.getvalue(), phones, accounts, {"unused-token-placeholder"})
    w.app.state.engine.dispose()


def test_zhida_sms_send_shows_no_phone_account_or_token(
    engine: Engine, small_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service_log: io.StringIO
) -> None:
    monkeypatch.setenv("ZHIDA_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("ZHIDA_LINK_BASE", raising=False)
    monkeypatch.delenv(stafftokens.TOKEN_ENV, raising=False)
    runner = CliRunner()
    with transaction(engine) as s:
        env = {stafftokens.TOKEN_ENV: stafftokens.issue(s, "rev", dt.datetime.now(dt.UTC))}

    def confirmed(app: Any, *args: str) -> Any:
        """A bulk command as a script runs it: once to see the count and total, again to confirm them."""
        seen = runner.invoke(app, list(args), env=env)
        expect = re.search(r"--expect-count (\d+) --expect-total ([\d.]+)", seen.output)
        assert expect, seen.output
        more = ["--expect-count", expect.group(1), "--expect-total", expect.group(2)]
        result = runner.invoke(app, [*args, *more], env=env)
        assert result.exit_code == 0, result.output
        return result

    imported = runner.invoke(offers_cmd.app, ["import", str(small_run)], env=env)
    assert imported.exit_code == 0, imported.output
    released = confirmed(offers_cmd.app, "release", "--all")
    sent = confirmed(sms_cmd.app, "send", "--all")
    assert "确认短信：发送 4 条" in sent.output, sent.output
    shown = runner.invoke(offers_cmd.app, ["list"])
    phones, accounts = _payee_data(engine)
    printed = imported.output + released.output + sent.output + shown.output + service_log.getvalue()
    assert "****" in sent.output  # the phones are there, masked
    assert_no_pii(printed, phones, accounts, {"unused-token-placeholder"})


def test_the_demo_flow_logs_and_reports_no_phone_account_or_token(
    engine: Engine, small_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service_log: io.StringIO
) -> None:
    captured: list[Any] = []
    real = sms.MemoryGateway
    monkeypatch.setattr(sms, "MemoryGateway", lambda: captured.append(real()) or captured[-1])
    with transaction(engine) as s:
        report = demo_flow(s, small_run, tmp_path / "bank", confirm_share=1.0, fail_share=0.0, seed=0)
    tokens = _tokens([m for phone in captured for m in phone.sent])
    phones, accounts = _payee_data(engine)
    everything = service_log.getvalue() + json.dumps(report, ensure_ascii=False, default=str)
    assert_no_pii(everything, phones, accounts, tokens)
