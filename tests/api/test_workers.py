"""Two worker processes of `zhida serve --workers 2` on one PostgreSQL database and one Redis: what must
hold across workers holds over HTTP. A confirmation link double-clicked at once confirms once, a sign-in
code signs in once, a staff lockout counted on one worker holds on the other, rate limits count the
requests of both, and a draft published from both at once is published once.

Every request goes out on a new connection, so the kernel hands it to either worker; the service's JSON
request log names the process (`pid`) that answered each request id, and each test checks that both
workers answered. Without PostgreSQL or Redis the module is skipped, except in CI (`CI` set), where it
fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from api.auth import set_password
from matcher.codes import USCC_ALPHABET, USCC_WEIGHTS
from payouts import imports, offers, signin, sms, users
from payouts.db import PayoutSettings, transaction
from payouts.models import AuditEvent, Confirmation, Offer, StaffUser
from portal import identity
from portal.standings import Contact
from tests.api.conftest import POLICIES, csrf_of
from tests.payouts.conftest import _postgres_engine, add_staff, payee, policy, uscc, write_run
from tests.ports import free_port

SECRET = "workers-test-secret-key-0123456789-abcdefgh"
PASSWORD = "correct-horse-battery"
MAX_FAILURES = 3
CONFIRM_IP_LIMIT = 10
REDIS_URL = "redis://127.0.0.1:6379/9"


def _with_check(body: str) -> str:
    """A USCC with its GB 32100 check character (enterprise sign-in refuses any other)."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    return body + USCC_ALPHABET[(31 - total % 31) % 31]


ENTERPRISE = _with_check("91430100000000777")


def _require(what: str, ok: Callable[[], object]) -> None:
    try:
        ok()
    except Exception as e:
        message = f"{what} is not reachable ({e})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Service:
    """The running service, its database, and what the tests were given before it started."""

    url: str
    engine: Engine
    log: Path
    links: list[str]
    code: str
    policy_token: str

    def pids(self, request_ids: list[str]) -> set[int]:
        """The worker processes that answered these requests (from the service's request log)."""
        wanted = set(request_ids)
        found: dict[str, int] = {}
        for _ in range(50):  # the log line is written just after the response
            for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("{") and '"request"' in line:
                    entry = json.loads(line)
                    if entry.get("request_id") in wanted:
                        found[entry["request_id"]] = entry["pid"]
            if len(found) == len(wanted):
                break
            time.sleep(0.1)
        return set(found.values())


def _seed(engine: Engine, url: str, root: Path) -> tuple[list[str], str, str]:
    """Staff, a notified match run (its links), a sign-in code, and a policy user's session token."""
    now = dt.datetime.now(dt.UTC)
    run = write_run(
        root / "run",
        [policy("wengang", budget="100000.00", items=("sme",))],
        [("wengang", "sme", n, "1000.00") for n in (1, 2)],
        [payee(1), payee(2)],
    )
    phone = sms.MemoryGateway()
    settings = PayoutSettings(link_base=f"{url}/c/")
    with transaction(engine) as s:
        add_staff(s)
        users.create_user(s, "locky", "reviewer", now=now)
        set_password(s, "locky", PASSWORD, "system", now)
        users.create_user(s, "policy_sci", "policy", department="市科学技术局", carry_over=True, now=now)
        imports.import_run(s, run, "rev", now)
        offers.release(s, "rev", now)
        sms.send_notices(s, phone, now, settings)
        identity.send_code(
            s,
            Contact(ENTERPRISE, "示例企业有限公司", "13800000001"),
            phone,
            secret=SECRET.encode(),
            sign="惠企直达",
            now=now,
            ip="10.9.9.9",
        )
        who = s.scalars(select(StaffUser).where(StaffUser.username == "policy_sci")).one()
        token = signin.start_session(s, who, now)
    links = [m.params["link"].removeprefix(url) for m in phone.sent if "link" in m.params]
    code = re.search(r"验证码 (\d{6})", phone.sent[-1].text)
    assert code is not None and len(links) == 2
    return links, code.group(1), token


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    import redis

    _require("Redis on 127.0.0.1:6379", lambda: redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping())
    root = tmp_path_factory.mktemp("workers")
    for engine in _postgres_engine(root):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        links, code, token = _seed(engine, url, root)
        env = {
            **os.environ,
            "ZHIDA_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "ZHIDA_DATA_DIR": str(root / "web"),
            "ZHIDA_SNAPSHOTS_ROOT": str(root / "snapshots"),
            "ZHIDA_PUBLIC_URL": url,
            "ZHIDA_SECRET_KEY": SECRET,
            "ZHIDA_REDIS_URL": REDIS_URL,
            # Each test speaks from addresses of its own (X-Forwarded-For from the local proxy), so that
            # its rate limits and blocks are its own.
            "ZHIDA_TRUSTED_PROXIES": "127.0.0.1",
            "ZHIDA_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
            "ZHIDA_CONFIRM_IP_LIMIT": str(CONFIRM_IP_LIMIT),
        }
        log = root / "service.log"
        zhida = Path(sys.executable).with_name("zhida")
        with log.open("wb") as out:
            server = subprocess.Popen(
                [str(zhida), "serve", "--workers", "2", "--port", str(port)],
                env=env,
                cwd=root,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        try:
            deadline = time.monotonic() + 90
            while True:  # the socket is bound before the workers start: wait for an answer
                assert server.poll() is None, log.read_text(encoding="utf-8", errors="replace")[-3000:]
                assert time.monotonic() < deadline, "the service did not start"
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            service = Service(url, engine, log, links, code, token)
            _until_both_workers_answer(service)
            yield service
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                pytest.fail("the workers were still running 30 seconds after SIGTERM")


def _until_both_workers_answer(service: Service) -> None:
    """Wait until both workers have answered (the second may still be starting when the first does)."""
    deadline = time.monotonic() + 90
    asked: list[str] = []
    while time.monotonic() < deadline:
        asked += [secrets.token_hex(8) for _ in range(4)]
        for rid in asked[-4:]:
            httpx.get(f"{service.url}/healthz", headers={"X-Request-ID": rid}, timeout=30)
        if len(service.pids(asked)) == 2:
            return
    pytest.fail("the second worker never answered")


def address() -> str:
    """A client address of a test's own."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def at_once(n: int, request: Callable[[int, dict[str, str]], httpx.Response]) -> tuple[list[int], list[str]]:
    """Send `n` requests at the same moment, each on a new connection; their statuses and request ids."""
    start = threading.Barrier(n)
    statuses: list[int] = [0] * n
    ids = [secrets.token_hex(8) for _ in range(n)]

    def one(k: int) -> None:
        start.wait()
        statuses[k] = request(k, {"X-Request-ID": ids[k]}).status_code

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, ids


def one_by_one(
    n: int, request: Callable[[int, dict[str, str]], httpx.Response]
) -> tuple[list[int], list[str]]:
    ids = [secrets.token_hex(8) for _ in range(n)]
    return [request(k, {"X-Request-ID": ids[k]}).status_code for k in range(n)], ids


def test_a_link_clicked_many_times_at_once_on_both_workers_confirms_once(service: Service) -> None:
    link, ip = service.links[0], address()
    with httpx.Client(base_url=service.url, headers={"X-Forwarded-For": ip}) as browser:
        page = browser.get(link)
        assert page.status_code == 200
        form = {"csrf": csrf_of(page.text)}
        cookies = dict(browser.cookies)

    def click(k: int, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{service.url}{link}/confirm",
            data=form,
            cookies=cookies,
            headers={**headers, "X-Forwarded-For": ip},
            timeout=30,
        )

    statuses, ids = at_once(8, click)
    assert statuses == [200] * 8
    assert len(service.pids(ids)) == 2
    with transaction(service.engine) as s:
        offer = s.scalars(select(Offer).where(Offer.uscc == uscc(1))).one()
        assert offer.state == "confirmed"
        assert s.scalar(select(func.count()).where(Confirmation.offer_id == offer.id)) == 1
        events = select(func.count()).where(
            AuditEvent.action == "confirm", AuditEvent.entity_id == offer.public_id
        )
        assert s.scalar(events) == 1


def test_a_sign_in_code_tried_on_both_workers_at_once_signs_in_once(service: Service) -> None:
    ip = address()
    with httpx.Client(base_url=service.url, headers={"X-Forwarded-For": ip}) as browser:
        page = browser.get("/e/login")
        form = {"uscc": ENTERPRISE, "code": service.code, "csrf": csrf_of(page.text)}
        cookies = dict(browser.cookies)

    def verify(k: int, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{service.url}/e/login/verify",
            data=form,
            cookies=cookies,
            headers={**headers, "X-Forwarded-For": ip},
            timeout=30,
        )

    statuses, ids = at_once(8, verify)
    assert sorted(statuses) == [303] + [401] * 7  # one sign-in; the code is used up for the others
    assert len(service.pids(ids)) == 2


def test_a_staff_lockout_counted_on_either_worker_holds_on_both(service: Service) -> None:
    def sign_in(password: str) -> Callable[[int, dict[str, str]], httpx.Response]:
        def attempt(k: int, headers: dict[str, str]) -> httpx.Response:
            return httpx.post(
                f"{service.url}/api/session",
                json={"username": "locky", "password": password},
                headers={**headers, "X-Forwarded-For": address()},
                timeout=30,
            )

        return attempt

    wrong, wrong_ids = one_by_one(MAX_FAILURES, sign_in("wrong-password-1"))
    assert wrong[:-1] == [401] * (MAX_FAILURES - 1) and wrong[-1] in (401, 423)
    right, right_ids = one_by_one(6, sign_in(PASSWORD))
    assert right == [423] * 6  # locked: refused even with the right password, whichever worker answers
    assert len(service.pids(wrong_ids + right_ids)) == 2


def test_rate_limits_count_the_requests_of_both_workers(service: Service) -> None:
    ip = address()

    def visit(k: int, headers: dict[str, str]) -> httpx.Response:
        return httpx.get(
            f"{service.url}/c/{secrets.token_urlsafe(16)}",
            headers={**headers, "X-Forwarded-For": ip},
            timeout=30,
        )

    statuses, ids = one_by_one(3 * CONFIRM_IP_LIMIT, visit)
    assert len(service.pids(ids)) == 2
    # Per process, each worker would let CONFIRM_IP_LIMIT through; shared in Redis, both together do.
    assert sum(1 for s in statuses if s != 429) == CONFIRM_IP_LIMIT
    assert statuses[CONFIRM_IP_LIMIT:] == [429] * (2 * CONFIRM_IP_LIMIT)


def test_a_draft_published_from_both_workers_at_once_is_published_once(service: Service) -> None:
    auth = {"Authorization": f"Bearer {service.policy_token}"}
    data = (POLICIES / "c-gaoxin.yaml").read_bytes()
    r = httpx.post(f"{service.url}/api/policies", files={"file": ("c-gaoxin.yaml", data)}, headers=auth)
    assert r.status_code == 201, r.text
    draft = r.json()

    def publish(k: int, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{service.url}/api/policies/{draft['id']}/drafts/{draft['version']}/publish",
            headers={**headers, **auth},
            timeout=30,
        )

    statuses, ids = at_once(8, publish)
    assert statuses.count(200) == 1
    # The others: the version is published already (409), or was no draft any more when they looked (404).
    assert all(s in (404, 409) for s in statuses if s != 200), statuses
    assert len(service.pids(ids)) == 2
    with transaction(service.engine) as s:
        key = f"{draft['id']}@{draft['version']}"
        published = select(func.count()).where(AuditEvent.action == "publish", AuditEvent.entity_id == key)
        assert s.scalar(published) == 1


def test_a_hundred_requests_at_once_on_both_workers_are_all_answered(service: Service) -> None:
    """The public search and the policy supermarket from a hundred clients at once: each is served, or
    refused at once with 503 and Retry-After; none waits out its 30 s, none fails; and the service
    answers a request alone at once afterwards. (A confirmation link asked for a hundred times is
    limited per link by design, so the links are not used here.)"""
    paths = ["/api/public/policies?q=稳岗", "/policies", "/api/public/policies"]
    retry_after: list[str | None] = [None] * 100

    def get(k: int, headers: dict[str, str]) -> httpx.Response:
        r = httpx.get(
            f"{service.url}{paths[k % len(paths)]}",
            headers={**headers, "X-Forwarded-For": address()},
            timeout=30,
        )
        retry_after[k] = r.headers.get("Retry-After")
        return r

    statuses, ids = at_once(100, get)
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 50, [
        (paths[k % len(paths)], c) for k, c in enumerate(statuses) if c != 200
    ]
    assert all(retry_after[k] for k, code in enumerate(statuses) if code == 503)
    assert len(service.pids(ids)) == 2
    started = time.monotonic()
    assert httpx.get(f"{service.url}/api/public/policies?q=稳岗", timeout=30).status_code == 200
    assert time.monotonic() - started < 5
