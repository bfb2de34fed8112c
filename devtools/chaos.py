"""Fault injection: `zhida chaos --crashes N --database-url URL [--seed S]`.

The harness prepares a small world on a PostgreSQL database (a synthetic snapshot, the bundled
policies, a match run, staff users with CLI tokens, a few values supplied by enterprises), then for
each crash point:

1. picks a step (offer import, release, SMS send, confirmation, batch create, approve, export,
   reconcile, override application): mostly the one after the last, now and then any; first running
   the steps before it, whole, if the world has nothing for it to do (making the world again, a copy
   of a template database, when the match run is spent);
2. runs the step in a child process (forked from this one, so it starts at once) that kills itself
   with SIGKILL at a chosen point: before its k-th SQL statement or its k-th COMMIT, k random
   (a SQLAlchemy event listener the child installs; product code knows nothing of it);
3. runs the step again, to completion, as a user would after the crash (the CLI command, with the
   count and total it now previews; the domain function for confirmation and override application,
   which are HTTP actions);
4. checks the invariants: no offer paid twice, no policy past its budget, no confirmation lost, no
   SMS handed to the provider twice without its key (the provider is simulated: a log of every
   hand-over, dropping a copy whose idempotency key it took), every enterprise's link works, every
   offer's audit history replays to its state, the audit chain verifies.

Every violation is printed with its crash point and the command that replays it; the last line is
`N crash points, V invariant violations`. The database is dropped and created again, so its name
must start with `zhida_chaos`.

`--restart-database` instead restarts the local PostgreSQL cluster during a burst of confirmations
against a running `zhida serve` (see `restart_during_confirmations`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, make_url, select

STEPS = ("import", "release", "sms", "confirm", "batch", "approve", "export", "reconcile", "override")
STEP_LABELS = {
    "import": "导入要约",
    "release": "初核发布",
    "sms": "发送短信",
    "confirm": "企业确认",
    "batch": "组批",
    "approve": "复核",
    "export": "导出银行文件",
    "reconcile": "导入银行回单",
    "override": "核实补充数据",
}
PREFIX = "zhida_chaos"
AS_OF = dt.date(2025, 9, 30)
POLICIES = Path("data/policies")
USERS = {  # name: (role, department)
    "chaos-reviewer": ("reviewer", None),
    "chaos-maker": ("finance_maker", None),
    "chaos-checker": ("finance_checker", None),
    "chaos-hr": ("reviewer", "市人力资源和社会保障局"),
}
ACTOR = {
    "import": "chaos-reviewer",
    "release": "chaos-reviewer",
    "sms": "chaos-reviewer",
    "batch": "chaos-maker",
    "approve": "chaos-checker",
    "export": "chaos-maker",
    "reconcile": "chaos-maker",
    "override": "chaos-hr",
}
CONFIRM_EACH = 15  # enterprises confirming in one confirmation step
SUPPLY_EACH = 4  # supplied values verified in one override step
FAILURES = ("账户已销户", "户名与账号不符")


@dataclass(frozen=True)
class Point:
    """Where a child dies: before its `k`-th SQL statement (`sql`) or its `k`-th COMMIT (`commit`)."""

    step: str
    at: str
    k: int

    def __str__(self) -> str:
        return f"{self.step}@{self.at}:{self.k}"


@dataclass
class Outcome:
    """What a child did: its exit status, whether it was killed, its statements and output."""

    code: int
    killed: bool
    statements: int
    output: str


@dataclass
class Violation:
    number: int
    point: Point
    problem: str


@dataclass
class World:
    """The database, the work folder, and what the harness did in it."""

    url: str
    work: Path
    enterprises: int
    seed: int
    tokens: dict[str, str] = field(default_factory=dict)  # staff user → CLI token
    generation: int = 0  # how many times the world was made
    imported: bool = False
    confirmed: set[str] = field(default_factory=set)  # offers an enterprise confirmed (the answer came)
    verified: set[str] = field(default_factory=set)  # supplied values staff verified
    statements: Counter[str] = field(default_factory=Counter)  # step → most statements seen in a whole run
    commits: Counter[str] = field(default_factory=Counter)

    @property
    def snapshot(self) -> Path:
        return self.work / f"snapshot-{self.enterprises}-{self.seed}"

    @property
    def run(self) -> Path:
        return self.work / f"run-{self.enterprises}-{self.seed}"

    @property
    def bank(self) -> Path:
        return self.work / "bank"

    @property
    def provider_log(self) -> Path:
        return self.work / f"provider-{self.generation}.jsonl"


_engines: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    from payouts.db import make_engine

    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def check_url(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not (parsed.database or "").startswith(PREFIX):
        raise SystemExit(
            f"zhida chaos 重建它使用的数据库：须为 PostgreSQL，库名以 {PREFIX} 开头"
            f"（例：postgresql://postgres@127.0.0.1:5432/{PREFIX}），而不是 {url}"
        )


def _admin(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)


def _template(url: str) -> str:
    return f"{make_url(url).database}_template"


def _recreate(url: str) -> None:
    """The database again, as a copy of the template (migrated, with the staff users)."""
    import psycopg

    if url in _engines:
        _engines.pop(url).dispose()
    name = make_url(url).database
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_template(url)}"')


def _make_template(world: World) -> None:
    """A database with the schema, the staff users and their CLI tokens, which each world copies."""
    import psycopg

    from payouts import stafftokens, users
    from payouts.db import make_engine, migrate, transaction

    template = make_url(world.url).set(database=_template(world.url)).render_as_string(hide_password=False)
    with psycopg.connect(_admin(world.url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_template(world.url)}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{_template(world.url)}"')
    engine = make_engine(template)
    migrate(engine)
    now = _now()
    with transaction(engine) as s:
        for name, (role, department) in USERS.items():
            users.create_user(s, name, role, department=department, carry_over=True, now=now)
        world.tokens = {name: stafftokens.issue(s, name, now, hours=24) for name in USERS}
    engine.dispose()


def drop(url: str) -> None:
    """Drop the harness's database and its template (tests clean up with it)."""
    import psycopg

    if url in _engines:
        _engines.pop(url).dispose()
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        for name in (make_url(url).database, _template(url)):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_world(world: World) -> None:
    """A fresh database with the schema, the staff users and their tokens, and the match run (the
    snapshot and the run are made once per size and seed and kept in the work folder)."""
    from devtools.generate import generate_snapshot
    from matcher.run import run_match

    world.work.mkdir(parents=True, exist_ok=True)
    if not (world.snapshot / ".complete").exists():
        shutil.rmtree(world.snapshot, ignore_errors=True)
        generate_snapshot(world.snapshot, world.enterprises, world.seed, taken_at=AS_OF)
        (world.snapshot / ".complete").touch()
    if not (world.run / ".complete").exists():
        shutil.rmtree(world.run, ignore_errors=True)
        run_match(world.snapshot, POLICIES, world.run, AS_OF)
        (world.run / ".complete").touch()
    if not world.tokens:
        _make_template(world)
    _recreate(world.url)
    world.generation += 1
    world.provider_log.unlink(missing_ok=True)
    world.imported = False
    world.confirmed.clear()
    world.verified.clear()
    shutil.rmtree(world.bank, ignore_errors=True)
    world.bank.mkdir(parents=True)
    _supply(world, 2 * SUPPLY_EACH)


def _supply(world: World, n: int) -> None:
    """`n` enterprises supply their unemployment insurance premium with evidence (to be verified)."""
    from payouts.db import transaction
    from portal import supplied

    rng = random.Random(world.seed * 7919 + world.generation * 31 + len(world.verified))
    missing = supplied.Missing("c-wenbao", "refund", "ui_premium_paid", 2024, None)
    uscc = _usccs(world)
    with transaction(_engine(world.url)) as s:
        taken = set(
            s.scalars(select(_supplied_model().uscc).where(_supplied_model().state == "submitted")).all()
        )
        for code in rng.sample([u for u in uscc if u not in taken], n):
            supplied.submit(
                s,
                uscc=code,
                missing=missing,
                field_name="ui_premium_paid",
                value=f"{rng.randint(1_000, 90_000)}.00",
                evidence=b"%PDF-1.4\n%chaos\n",
                evidence_name="缴费证明.pdf",
                evidence_dir=world.work / "evidence",
                now=_now(),
            )


def _supplied_model() -> Any:
    from portal.models import SuppliedValue

    return SuppliedValue


def _usccs(world: World) -> list[str]:
    import duckdb

    path = world.snapshot / "enterprises.parquet"
    return [
        r[0] for r in duckdb.sql(f"SELECT uscc FROM read_parquet('{path}') ORDER BY 1 LIMIT 500").fetchall()
    ]


# The steps: each finds what it can act on now (None: nothing) and is run as argv for the CLI, or as a
# named domain call, in the child.


def _scalars(world: World, query: Any) -> list[Any]:
    from payouts.db import transaction

    with transaction(_engine(world.url), read_only=True) as s:
        return list(s.scalars(query).all())


def _policy_in(world: World, state: str) -> str | None:
    from payouts.models import Offer

    found = _scalars(
        world, select(Offer.policy_id).where(Offer.state == state).distinct().order_by(Offer.policy_id)
    )
    return found[0] if found else None


def _batch_in(world: World, state: str) -> str | None:
    from payouts.models import Batch

    found = _scalars(world, select(Batch.reference).where(Batch.state == state).order_by(Batch.id).limit(1))
    return found[0] if found else None


def _preview(world: World, action: str, policy: str) -> list[str]:
    from payouts import offers
    from payouts.db import transaction
    from payouts.selection import OfferFilter, Selection

    with transaction(_engine(world.url), read_only=True) as s:
        p = offers.preview_action(s, Selection(filter=OfferFilter(policy_id=policy)), action)
    return ["--expect-count", str(p.tally.count), "--expect-total", str(p.tally.total)]


def _confirmable(world: World) -> list[str]:
    """Links of notified offers (the enterprise's SMS: the harness derives them with the link key)."""
    from payouts import tokens
    from payouts.db import PayoutSettings, transaction
    from payouts.models import Offer, OfferState, SmsMessage

    settings = PayoutSettings.from_env()
    with transaction(_engine(world.url), read_only=True) as s:
        rows = s.execute(
            select(Offer.public_id, Offer.round, SmsMessage.attempts)
            .join(SmsMessage, (SmsMessage.offer_id == Offer.id) & (SmsMessage.round == Offer.round))
            .where(Offer.state == OfferState.NOTIFIED.value, SmsMessage.kind == "notice")
            .order_by(Offer.id)
            .limit(CONFIRM_EACH)
        ).all()
    return [tokens.derived_link_token(settings.link_key, f"{p}|{r}|notice|{a}") for p, r, a in rows]


def _submitted(world: World) -> list[str]:
    model = _supplied_model()
    return _scalars(
        world, select(model.public_id).where(model.state == "submitted").order_by(model.id).limit(SUPPLY_EACH)
    )


def _return_file(world: World, reference: str) -> Path:
    from payouts import batches
    from payouts.bankfiles import render_return
    from payouts.db import transaction

    path = world.bank / f"{reference}.return.csv"
    if not path.exists():
        rng = random.Random(reference)
        with transaction(_engine(world.url), read_only=True) as s:
            content = batches.bank_file_of(s, batches.get_batch(s, reference))
        failures = {ln.reference: rng.choice(FAILURES) for ln in content.lines if rng.random() < 0.05}
        path.write_bytes(render_return(content, failures))
    return path


def task(world: World, step: str) -> list[str] | None:
    """What `step` would do now: the CLI's argv (or `["@confirm", links...]`, `["@override", ids...]`
    for the domain calls), or None if the world has nothing for it."""
    if step == "import":
        return None if world.imported else ["offers", "import", str(world.run)]
    if step in ("release", "sms"):
        state, action = ("drafted", "release") if step == "release" else ("released", "notify")
        policy = _policy_in(world, state)
        if policy is None:
            return None
        command = ["offers", "release"] if step == "release" else ["sms", "send"]
        return [*command, "--policy", policy, *_preview(world, action, policy)]
    if step == "confirm":
        links = _confirmable(world)
        return ["@confirm", *links] if links else None
    if step == "batch":
        policy = _policy_in(world, "confirmed")
        return None if policy is None else ["batch", "create", "--policy", policy]
    if step in ("approve", "export", "reconcile"):
        state = {"approve": "assembled", "export": "approved", "reconcile": "exported"}[step]
        reference = _batch_in(world, state)
        if reference is None:
            return None
        if step == "approve":
            return ["batch", "approve", reference]
        if step == "export":
            return ["batch", "export", reference, "--out", str(world.bank)]
        return ["batch", "reconcile", reference, str(_return_file(world, reference))]
    if step == "override":
        ids = _submitted(world)
        return ["@override", *ids] if ids else None
    raise ValueError(step)


def ready(world: World, step: str) -> list[str]:
    """The task of `step`, first running the steps before it (whole) until there is one; the world
    is made again when even an import has nothing left to do."""
    for _ in range(6):
        argv = task(world, step)
        if argv is not None:
            return argv
        if step == "override":
            _supply(world, SUPPLY_EACH)
            continue
        if step == "import":
            make_world(world)
            continue
        before = STEPS[STEPS.index(step) - 1]
        if step == "confirm" and task(world, "sms") is None and task(world, "release") is None:
            before = "import"
        prior = ready(world, before)
        settle(world, before, prior)
    raise RuntimeError(f"no work for {step} after making the world again")


def settle(world: World, step: str, argv: list[str]) -> Outcome:
    """Run a task whole (no kill), learning how many statements and commits it makes."""
    outcome = run_child(world, step, argv, None)
    world.statements[step] = max(world.statements[step], outcome.statements)
    _note(world, step, argv, outcome)
    return outcome


def _note(world: World, step: str, argv: list[str], outcome: Outcome) -> None:
    if outcome.code == 0 and step == "import":
        world.imported = True
    if outcome.code == 0 and step == "confirm":
        world.confirmed.update(_confirmed_ids(world, argv[1:]))
    if outcome.code == 0 and step == "override":
        world.verified.update(argv[1:])


def _confirmed_ids(world: World, links: list[str]) -> list[str]:
    from payouts import tokens
    from payouts.models import Offer, SmsMessage

    hashes = [tokens.token_hash(t) for t in links]
    return _scalars(
        world,
        select(Offer.public_id)
        .join(SmsMessage, SmsMessage.offer_id == Offer.id)
        .where(SmsMessage.token_hash.in_(hashes)),
    )


# The child: forked, it runs one task and may kill itself.


@dataclass
class RecordingProvider:
    """The SMS provider as the harness sees it: every hand-over appended to a log (the provider took
    it once the line is written), a copy whose idempotency key it took before dropped."""

    log: Path
    name: str = "outbox"

    def send(self, sms: Any) -> str:
        from payouts import tokens

        link = sms.params.get("link", "")
        record = {
            "key": sms.key,
            "phone": sms.phone,
            "token_hash": tokens.token_hash(link.rsplit("/", 1)[-1]),
        }
        with self.log.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return "chaos-" + sms.key[:12]


def _child(world: World, step: str, argv: list[str], point: Point | None, report: Path) -> int:
    """In the forked process: run the task, dying at `point`; the statements made go to `report`."""
    from payouts import db

    for engine in _engines.values():
        engine.dispose(close=False)  # the parent's connections stay the parent's
    os.environ["ZHIDA_DATABASE_URL"] = world.url
    os.environ["ZHIDA_STAFF_TOKEN"] = world.tokens.get(ACTOR.get(step, ""), "")
    engine = db.make_engine(world.url)
    db._engines[db.normalize_url(world.url)] = engine  # migrated already: no migration in the count
    seen = Counter[str]()

    def die_if_due(kind: str) -> None:
        seen[kind] += 1
        if point is not None and point.at == kind and seen[kind] == point.k:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", lambda *a, **k: die_if_due("sql"))
    event.listen(Engine, "commit", lambda *a, **k: die_if_due("commit"))
    code = 0
    try:
        if argv[0] == "@confirm":
            _confirm_all(engine, argv[1:])
        elif argv[0] == "@override":
            _verify_all(engine, argv[1:])
        else:
            import api.commands.sms as sms_command
            from api import cli

            sms_command._gateway = lambda show_links=False: RecordingProvider(world.provider_log)
            sys.argv = ["zhida", *argv]
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 70
    report.write_text(json.dumps({"sql": seen["sql"], "commit": seen["commit"]}))
    return code


def _confirm_all(engine: Engine, links: list[str]) -> None:
    from payouts import confirm
    from payouts.db import transaction

    for token in links:
        with transaction(engine) as s:
            confirm.confirm(s, token, ip="127.0.0.1", user_agent="zhida-chaos", now=_now())


def _verify_all(engine: Engine, ids: list[str]) -> None:
    from payouts.db import transaction
    from portal import supplied
    from rules.errors import StateError

    for public_id in ids:
        try:
            with transaction(engine) as s:
                supplied.verify(s, public_id, "chaos-hr", _now())
        except StateError:
            pass  # verified before the crash: the staff member sees "already handled" and moves on


def _warm() -> None:
    """Import what the children run, once, before the first fork: each child then starts at once."""
    import importlib

    for module in (
        "api.cli",
        "api.commands.offers",
        "api.commands.sms",
        "api.commands.batch",
        "payouts.confirm",
        "payouts.imports",
        "payouts.batches",
        "portal.supplied",
    ):
        importlib.import_module(module)


def run_child(world: World, step: str, argv: list[str], point: Point | None) -> Outcome:
    """Fork, run the task in the child (output to a file), wait; what happened."""
    with tempfile.TemporaryDirectory(prefix="zhida-chaos-") as tmp:
        out, report = Path(tmp) / "out", Path(tmp) / "report"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            fd = os.open(out, os.O_WRONLY | os.O_CREAT)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            # Whatever stood for the parent's output (a test runner's capture) is not the child's.
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            code = 70
            try:
                code = _child(world, step, argv, point, report)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        counts = json.loads(report.read_text()) if report.exists() else {"sql": 0, "commit": 0}
        if not killed:
            world.commits[step] = max(world.commits[step], counts["commit"])
        return Outcome(code, killed, counts["sql"], out.read_text(errors="replace") if out.exists() else "")


# The invariants.


def check(world: World) -> list[str]:
    """Every invariant broken now, each as a sentence."""
    from payouts import audit, batches
    from payouts.db import transaction
    from payouts.models import Batch, BatchLine, Confirmation, Offer, SmsMessage

    problems: list[str] = []
    with transaction(_engine(world.url), read_only=True) as s:
        paid = Counter(s.scalars(select(BatchLine.offer_id).where(BatchLine.status == "paid")).all())
        live = Counter(s.scalars(select(BatchLine.offer_id).where(BatchLine.live)).all())
        problems += [f"offer #{o} paid {n} times" for o, n in paid.items() if n > 1]
        problems += [f"offer #{o} in {n} live batches" for o, n in live.items() if n > 1]
        for policy, period in s.execute(select(Batch.policy_id, Batch.period).distinct()).all():
            money = batches.budget(s, policy, period)
            if money.remaining is not None and money.remaining < 0:
                problems.append(f"policy {policy} ({period}) past its budget by {-money.remaining}")
        offers = {o.id: o for o in s.scalars(select(Offer)).all()}
        confirmed_states = {"confirmed", "in_batch", "paid", "payment_failed"}
        answers = {(c.offer_id, c.round): c.kind for c in s.scalars(select(Confirmation)).all()}
        notices = {
            (m.offer_id, m.round): m
            for m in s.scalars(select(SmsMessage).where(SmsMessage.kind == "notice")).all()
        }
        for o in offers.values():
            answer = answers.get((o.id, o.round))
            notice = notices.get((o.id, o.round))
            if answer == "confirm" and o.state not in confirmed_states:
                problems.append(f"offer {o.public_id}: confirmed by the enterprise, but {o.state}")
            if (
                notice is not None
                and notice.status == "sent"
                and o.state in confirmed_states
                and answer != "confirm"
            ):
                problems.append(f"offer {o.public_id}: {o.state} without the enterprise's confirmation")
            if o.public_id in world.confirmed and o.state not in confirmed_states:
                problems.append(f"offer {o.public_id}: its confirmation was lost ({o.state})")
        problems += _sms_problems(world, list(notices.values()))
        histories = audit.offer_histories(s)
        for o in offers.values():
            problem = audit.replay_problem(histories.get(o.public_id, []), o.state)
            if problem:
                problems.append(f"offer {o.public_id}: audit history does not replay: {problem}")
                break
        report = audit.verify(s)
        problems += [f"audit chain: {p}" for p in report.problems]
        model = _supplied_model()
        states = dict(s.execute(select(model.public_id, model.state)).all())
        problems += [
            f"supplied value {p}: verified, but {states.get(p)}"
            for p in world.verified
            if states.get(p) != "verified"
        ]
    return problems


def _sms_problems(world: World, notices: list[Any]) -> list[str]:
    """The provider's log against the outbox: nothing handed over twice without its key, every message
    the outbox calls sent delivered, every delivered link working."""
    if not world.provider_log.exists():
        return []
    delivered: dict[str, dict[str, str]] = {}  # key → the first hand-over (the copies are dropped)
    for line in world.provider_log.read_text().splitlines():
        record = json.loads(line)
        delivered.setdefault(record["key"], record)
    problems = []
    by_hash = {m.token_hash: m for m in notices if m.token_hash}
    per_message = Counter(
        by_hash[r["token_hash"]].id for r in delivered.values() if r["token_hash"] in by_hash
    )
    problems += [
        f"SMS #{m}: delivered {n} times under different keys" for m, n in per_message.items() if n > 1
    ]
    stale = [r for r in delivered.values() if r["token_hash"] not in by_hash]
    problems += [
        f"an SMS to {r['phone'][:3]}****{r['phone'][-4:]} carries a link that opens nothing" for r in stale
    ]
    hashes = {r["token_hash"] for r in delivered.values()}
    for m in notices:
        if m.status == "sent" and m.token_hash not in hashes:
            problems.append(f"SMS #{m.id}: sent in the outbox, never delivered")
        if m.status == "sending":
            problems.append(f"SMS #{m.id}: still sending after the step ran again")
    return problems


def replay_command(world: World, number: int) -> str:
    """The command that runs the same crash points again, up to and including `number`."""
    return (
        f"zhida chaos --crashes {number} --database-url {world.url} --seed {world.seed} "
        f"--enterprises {world.enterprises}"
    )


def chaos(
    crashes: int,
    url: str,
    *,
    seed: int = 0,
    enterprises: int = 2_000,
    work: Path | None = None,
    echo: Callable[[str], None] = print,
    world: World | None = None,
) -> list[Violation]:
    """Run `crashes` crash points; returns the violations (each also echoed with how to replay it)."""
    check_url(url)
    world = world or World(url, (work or Path("var/chaos")).resolve(), enterprises, seed)
    saved = os.environ.get("PGOPTIONS")
    # A killed client is the fault here, not a lost server: commits need not wait for the disk.
    os.environ["PGOPTIONS"] = f"{saved or ''} -c synchronous_commit=off".strip()
    try:
        return _crash_points(world, crashes, echo)
    finally:
        if saved is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = saved


def _crash_points(world: World, crashes: int, echo: Callable[[str], None]) -> list[Violation]:
    _warm()
    seed = world.seed
    rng = random.Random(seed)
    make_world(world)
    violations: list[Violation] = []
    following = rng.randrange(len(STEPS))
    for number in range(1, crashes + 1):
        # Mostly the step after the last one, so that the world has work for it without running the
        # steps before it first; now and then any step, on whatever the world holds.
        step = rng.choice(STEPS) if rng.random() < 0.25 else STEPS[following]
        following = (STEPS.index(step) + 1) % len(STEPS)
        at = "commit" if rng.random() < 0.3 else "sql"
        draw = rng.random()
        argv = ready(world, step)
        # Until a whole run of the step was seen, a guess of how many statements and commits it makes.
        most = (world.commits[step] or 3) if at == "commit" else (world.statements[step] or 60)
        point = Point(step, at, 1 + int(draw * most))
        started = time.perf_counter()
        crashed = run_child(world, step, argv, point)
        again = task(world, step) if step not in ("confirm", "override") else argv
        rerun = settle(world, step, again) if again is not None else None
        if step == "import":
            world.imported = True  # imported before the crash, or by the run again
        problems = []
        if rerun is not None and (rerun.code not in (0, 1) or "Traceback" in rerun.output):
            problems.append(f"the step failed when run again ({rerun.code}): {rerun.output.strip()[-400:]}")
        left = task(world, step) if again is not None and step not in ("confirm", "override") else None
        if again is not None and left is not None and left[:4] == again[:4]:
            problems.append(
                f"the step, run again, left its work undone: {rerun.output.strip()[-400:] if rerun else ''}"
            )
        if crashed.code not in (0, 1, -signal.SIGKILL) or "Traceback" in crashed.output:
            problems.append(
                f"the step failed before its crash point ({crashed.code}): {crashed.output.strip()[-400:]}"
            )
        problems += check(world)
        echo(
            f"{number:>4} {STEP_LABELS[step]:<8} {point!s:<22} "
            f"{'killed' if crashed.killed else 'ran to the end'}, {time.perf_counter() - started:.1f} s"
            + (f", {len(problems)} violations" if problems else "")
        )
        for shown, problem in enumerate(problems):
            violations.append(Violation(number, point, problem))
            if shown < 5:
                echo(f"     violation at crash point {number} ({point}): {problem}")
        if problems:
            more = f"（另有 {len(problems) - 5} 条同一检查点的违例）" if len(problems) > 5 else ""
            echo(f"     replay: {replay_command(world, number)}  (its last point: {point}){more}")
    return violations


# The database restarted under a burst of confirmations.

RESTART = "pg_ctlcluster --skip-systemctl-redirect {version} main restart"


def restart_during_confirmations(
    url: str,
    work: Path,
    *,
    enterprises: int = 2_000,
    clients: int = 16,
    echo: Callable[[str], None] = print,
    restart: Callable[[], None] | None = None,
) -> list[str]:
    """Restart the local PostgreSQL cluster while `clients` enterprises confirm their offers on a
    running `zhida serve`; returns what went wrong (nothing, when every answer during the restart was
    a 503 with Retry-After and a Chinese message, and every confirmation the clients were told of is
    in the database, and every offer ends confirmed after the clients' retries).

    Not for CI: it restarts the machine's PostgreSQL, under every other user of it.
    """
    import queue
    import re
    import subprocess
    import threading

    import httpx

    from devtools.load import free_port, source_address
    from payouts.models import Offer

    check_url(url)
    _warm()
    world = World(url, work.resolve(), enterprises, 0)
    make_world(world)
    for step in ("import", "release", "sms"):
        while (argv := task(world, step)) is not None:
            done = settle(world, step, argv)
            if done.code != 0:
                raise SystemExit(f"{step} failed: {done.output}")
            if step == "import":
                world.imported = True
                break
    links = _confirmable_all(world)
    echo(f"{len(links):,} offers notified; starting zhida serve")
    port = free_port()
    log = world.work / "serve.log"
    env = {
        **os.environ,
        "ZHIDA_DATABASE_URL": url,
        "ZHIDA_DATA_DIR": str(world.work / "web"),
        "ZHIDA_CONFIRM_IP_LIMIT": "1000000",
        "ZHIDA_CONFIRM_TOKEN_LIMIT": "1000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    answers: Counter[str] = Counter()
    told: set[str] = set()  # tokens whose client was told "confirmed"
    lock = threading.Lock()
    todo: queue.Queue[str] = queue.Queue()
    for token in links:
        todo.put(token)

    def note(kind: str, problem: str | None = None) -> None:
        with lock:
            answers[kind] += 1
            if problem and len(problems) < 50:
                problems.append(problem)

    def one(client: httpx.Client, token: str) -> bool:
        """One enterprise's click; True when it is done (confirmed), False to try again."""
        try:
            page = client.get(f"/c/{token}")
            if page.status_code == 200:
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                if csrf is None:
                    note(
                        "page without form",
                        f"the confirm page of a notified offer has no form: {page.text[:200]}",
                    )
                    return True
                answer = client.post(f"/c/{token}/confirm", data={"csrf": csrf.group(1)})
            else:
                answer = page
        except httpx.HTTPError as e:
            note("connection error", f"the server did not answer: {e!r}")
            time.sleep(0.5)
            return False
        if answer.status_code == 200:
            note("200")
            with lock:
                told.add(token)
            return True
        if answer.status_code == 503:
            retry = answer.headers.get("Retry-After")
            if retry is None or "请稍候" not in answer.text:
                note("503 unclear", f"a 503 without Retry-After or a Chinese message: {answer.text[:200]}")
            else:
                note("503")
            time.sleep(min(float(retry or 1), 1.0))  # a patient client; the header says 5 s
            return False
        note(str(answer.status_code), f"answer {answer.status_code}: {answer.text[:300]}")
        return answer.status_code < 500

    def client_loop(i: int) -> None:
        transport = httpx.HTTPTransport(local_address=source_address(i))
        with httpx.Client(base_url=base, transport=transport, timeout=30) as client:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    token = todo.get_nowait()
                except queue.Empty:
                    return
                if not one(client, token):
                    todo.put(token)

    try:
        _wait_ready(base, server, log)
        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(1.0)
        version = " ".join(os.listdir("/etc/postgresql"))
        echo(f"restarting PostgreSQL {version} during the burst")
        took = time.monotonic()
        if restart is None:
            subprocess.run(RESTART.format(version=version).split(), check=True)
        else:
            restart()
        echo(f"restart took {time.monotonic() - took:.1f} s")
        for t in threads:
            t.join()
        echo(f"burst over in {time.monotonic() - started:.1f} s: answers {dict(answers)}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    if answers["503"] == 0:
        problems.append("no client saw the restart (no 503): the burst ended before it, nothing was tested")
    from payouts.db import transaction

    states = {}
    with transaction(_engine(url), read_only=True) as s:
        for public_id, round_, attempts, state in s.execute(_link_rows()).all():
            states[_link(public_id, round_, attempts)] = state
        confirmed = s.scalar(select(func.count()).select_from(Offer).where(Offer.state == "confirmed"))
    lost = [t for t in told if states.get(t) != "confirmed"]
    left = [t for t in links if states.get(t) != "confirmed"]
    problems += [f"a confirmation the client was told of is lost: {t[:4]}…" for t in lost[:20]]
    if left:
        problems.append(f"{len(left)} offers not confirmed after the clients' retries")
    echo(f"{len(links):,} links, {len(told):,} told confirmed, {confirmed:,} confirmed in the database")
    return problems


def _link_rows() -> Any:
    from payouts.models import Offer, SmsMessage

    return (
        select(Offer.public_id, Offer.round, SmsMessage.attempts, Offer.state)
        .join(SmsMessage, (SmsMessage.offer_id == Offer.id) & (SmsMessage.round == Offer.round))
        .where(SmsMessage.kind == "notice", SmsMessage.status == "sent")
    )


def _link(public_id: str, round_: int, attempts: int) -> str:
    from payouts import tokens
    from payouts.db import PayoutSettings

    return tokens.derived_link_token(
        PayoutSettings.from_env().link_key, f"{public_id}|{round_}|notice|{attempts}"
    )


def _confirmable_all(world: World) -> list[str]:
    from payouts.db import transaction

    with transaction(_engine(world.url), read_only=True) as s:
        return [_link(p, r, a) for p, r, a, state in s.execute(_link_rows()).all() if state == "notified"]


def _wait_ready(base: str, server: Any, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"zhida serve stopped at start; see {log}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"zhida serve did not start in 2 minutes; see {log}")
