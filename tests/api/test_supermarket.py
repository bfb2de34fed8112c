"""The public policy supermarket (政策超市): search in Chinese, filters, the detail page, and that only the
latest published version of a policy is ever shown. No login anywhere.

The world is the service tests' prepared world (the conformance policies published) with the bundled
policy library published on top, through the same publish path the console uses.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.policystore import PolicyStore
from payouts.db import make_engine, migrate, transaction
from portal import supermarket
from portal.models import PolicyListing
from portal.supermarket import Search
from rules.ruleset import library_dir, load_ruleset
from tests.api.conftest import AS_OF, World, copy_world

NOW = dt.datetime(2025, 9, 29, 2, 0, tzinfo=dt.UTC)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def market(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """A copy of the world with the policy library published too (read-only tests)."""
    w = copy_world(template, tmp_path_factory.mktemp("market"))
    with transaction(w.app.state.engine) as s:
        w.app.state.store.seed(library_dir(), s, "system", NOW)
    yield w
    w.app.state.engine.dispose()


# The job-retention refunds of the library: the national rounds and the provinces' own 2025 rules.
REFUNDS = {
    "wengang-2023",
    "wengang-2024",
    "wengang-2025",
    "wengang-shandong-2025",
    "wengang-gansu-2025",
    "wengang-shanxi-2025",
    "wengang-liaoyuan-2025",
    "wengang-ningxia-2025",
}


def ids(client: TestClient, **params: Any) -> list[str]:
    """Every hit, page after page (the library holds more policies than one page shows)."""
    found: list[str] = []
    page, pages = 1, 1
    while page <= pages:
        r = client.get("/api/public/policies", params={**params, "page": page})
        assert r.status_code == 200, r.text
        found += [h["policy_id"] for h in r.json()["hits"]]
        page, pages = page + 1, r.json()["pages"]
    return found


def test_a_two_character_word_finds_the_policy_that_contains_it(market: World) -> None:
    page = TestClient(market.app).get("/policies", params={"q": "稳岗"})  # no login
    assert page.status_code == 200
    assert "2025年失业保险稳岗返还" in page.text
    assert "小微企业稳岗补贴（示例）" in page.text  # a conformance policy: also published
    assert "高新技术企业首次认定奖励" not in page.text
    assert "<script" not in page.text  # works without JavaScript
    found = ids(market.client, q="稳岗")
    assert {"wengang-2025", "wengang-2024", "c-wenbao"} <= set(found)
    assert "gaoxin-changsha" not in found


def test_words_of_three_and_more_characters_and_several_words(market: World) -> None:
    # Titles that hold the word first (Fujian's and Fuzhou's awards), then summaries that do (Longgang's
    # R&D support; Sichuan's 专精特新 recognition, whose 小巨人 may not apply for its review).
    found = ids(market.client, q="小巨人")
    assert found[:2] == ["xiaojuren-fujian", "xiaojuren-fuzhou"]
    assert set(found[2:]) == {"yanfa-longgang", "zizhi-zhuanjingtexin-sichuan-2024"}
    assert set(ids(market.client, q="失业保险 返还")) == REFUNDS
    assert ids(market.client, q="研发 河南") == ["yanfa-henan-2018"]
    assert ids(market.client, q="稳岗补贴返还") == []  # 岗补 and 贴返 are in no policy: no false hit
    assert ids(market.client, q="！！！") == []


def test_policies_whose_title_holds_the_word_come_first(market: World) -> None:
    found = ids(market.client, q="研发")
    titled = [pid for pid in found if "研发" in _title(market, pid)]
    assert found[: len(titled)] == titled and len(titled) >= 2
    r = market.client.get("/api/public/policies", params={"q": "研发"}).json()
    scores = [h["score"] for h in r["hits"]]
    assert scores == sorted(scores, reverse=True)


def _title(w: World, policy_id: str) -> str:
    store: PolicyStore = w.app.state.store
    record = store.latest_published(policy_id)
    assert record is not None
    return record.title


def test_filters_by_category_department_region_industry_and_size(market: World) -> None:
    c = market.client
    assert set(ids(c, category="降本增效")) == REFUNDS | {"jiangfei-shiye-2025", "huanjiao-tekun-2022"}
    assert set(ids(c, category="要素保障")) == {
        "yaosu-guangyuan-2023",
        "yaosu-sichuan-2022",
        "yaosu-qianjiang-2023",
    }
    assert ids(c, department="长沙市科学技术局") == ["gaoxin-changsha"]
    # Region: a policy for 长沙 shows for 湖南 and for 长沙, not for 广东; nationwide ones show everywhere.
    for code in ("43", "4301", "430102"):
        assert {"gaoxin-changsha", "kuogang-2025"} <= set(ids(c, region=code)), code
    assert "gaoxin-changsha" not in ids(c, region="44")
    assert "kuogang-2025" in ids(c, region="44")
    # A province with its own refund rules: its file shows there, and the national file (which excludes it)
    # does not; elsewhere the other way round.
    assert {"wengang-shandong-2025", "kuogang-shandong-2025"} <= set(ids(c, region="3701"))
    assert not {"wengang-2025", "kuogang-2025"} & set(ids(c, region="3701"))
    assert "wengang-shandong-2025" not in ids(c, region="44")
    # 山东省 except 青岛市: shown for 山东 and 济南, not for 青岛.
    assert "yanfa-shandong-2025" in ids(c, region="37")
    assert "yanfa-shandong-2025" in ids(c, region="3701")
    assert "yanfa-shandong-2025" not in ids(c, region="3702")
    assert "yanfa-shandong-2025" not in ids(c, region="370202")
    # Industry: 黑龙江 规上工业 is for sections B, C, D only.
    assert "shenggui-heilongjiang" in ids(c, industry="C")
    assert "shenggui-heilongjiang" not in ids(c, industry="F")
    # Size: the conformance 稳岗 policy is for small and micro enterprises only.
    assert "c-wenbao" in ids(c, size="micro")
    assert "c-wenbao" not in ids(c, size="large")
    assert "wengang-2025" in ids(c, size="large")
    # Filters combine with words.
    # Filters combine with words: the loans are for small and micro firms only.
    large = set(ids(c, q="稳岗", size="large"))
    assert large == REFUNDS | {"jiangfei-shiye-2025"}
    assert {"wengang-daikuan-2025", "daikuan-fujian-2023"} <= set(ids(c, q="稳岗", size="micro"))


def test_still_open_keeps_only_policies_in_force_on_the_service_date(market: World) -> None:
    everything = set(ids(market.client))
    still_open = set(ids(market.client, open="1"))
    assert {"wengang-2024", "yanfa-henan-2018"} <= everything - still_open  # ended before 2025-09-30
    assert "wengang-2025" in still_open
    r = market.client.get("/api/public/policies", params={"open": "1"}).json()
    assert all(h["valid_to"] >= AS_OF.isoformat() for h in r["hits"])


def test_sort_by_amount_puts_the_largest_fixed_amount_or_cap_first(market: World) -> None:
    first = market.client.get("/api/public/policies", params={"sort": "amount"}).json()
    hits = first["hits"]
    for page in range(2, first["pages"] + 1):
        hits += market.client.get("/api/public/policies", params={"sort": "amount", "page": page}).json()[
            "hits"
        ]
    amounts = [h["max_amount"] for h in hits]
    known = [float(a) for a in amounts if a is not None]
    assert known == sorted(known, reverse=True)
    assert amounts.index(None) == len(known)  # formulas without a cap come last
    # Shandong's R&D subsidy and Sichuan's first-of-a-kind award (a cap set on review) tie at 1,000万.
    assert {h["policy_id"] for h in hits[:2]} == {"yanfa-shandong-2025", "ks-shoutao-sichuan-2025"}
    assert hits[0]["max_amount"] == hits[1]["max_amount"] == "10000000.00"


def test_the_detail_page_tells_conditions_clauses_amounts_validity_source_and_payment(market: World) -> None:
    page = TestClient(market.app).get("/policies/gaoxin-changsha")
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", "", page.text)
    policy = next(p for p in load_ruleset(library_dir()) if p.id == "gaoxin-changsha")
    for condition in [*policy.conditions, *policy.items[0].conditions]:
        assert condition.text in text
        if condition.clause:
            assert f"（条款：{condition.clause}）" in text
    assert "每户 200,000.00 元" in text
    assert "2025年1月1日 至 2025年12月31日" in text
    assert "长沙市科学技术局" in text
    assert policy.source.document in text
    assert "免申即享：无需申请" in text and "短信确认链接" in text
    assert "湖南省长沙市" in text  # the region, read from the conditions
    wengang = TestClient(market.app).get("/policies/wengang-2025").text
    wengang_policy = next(p for p in load_ruleset(library_dir()) if p.id == "wengang-2025")
    for item in wengang_policy.items:
        assert item.title in wengang
        for condition in [*wengang_policy.conditions, *item.conditions]:
            assert condition.text in wengang
    assert wengang.count("（条款：一）") == 5  # every condition that names its clause
    assert 'href="https://jlsi.jl.gov.cn/lys/zcfgjjd/sybx/202506/t20250604_9247043.html"' in wengang
    assert "上年度实缴失业保险费 × 0.6" in wengang  # a formula in the catalog's words
    assert "无需申请，也无需确认" in wengang  # confirmation: none
    capped = TestClient(market.app).get("/policies/yanfa-henan-2018").text
    assert "每户最高 <strong>1,000,000.00</strong> 元" in capped


def test_public_pages_may_be_listed_and_cached_but_staff_pages_may_not(market: World) -> None:
    page = market.client.get("/policies", params={"q": "稳岗"})
    assert page.headers["cache-control"] == "public, max-age=300"
    assert "noindex" not in page.text
    assert market.client.get("/api/public/policies").headers["cache-control"] == "public, max-age=300"
    missing = market.client.get("/policies/no-such-policy")
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
    assert "工作台" not in missing.text and 'href="/policies"' in missing.text  # a visitor's page
    assert market.client.get("/console").headers["cache-control"] == "no-store"


def test_the_json_detail_has_the_same_facts(market: World) -> None:
    r = market.client.get("/api/public/policies/yanfa-shandong-2025")
    assert r.status_code == 200
    body = r.json()
    assert body["regions"] == "山东省（山东省青岛市除外）"
    assert body["budget"] == "50000000.00" and body["max_amount"] == "10000000.00"
    assert body["items"][0]["cap"] == "10000000.00"
    assert body["payment"].startswith("免申即享：无需申请")
    assert market.client.get("/api/public/policies/no-such-policy").status_code == 404


def test_drafts_are_never_shown_and_publishing_replaces_the_listed_version(template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path)
    try:
        public = TestClient(w.app)
        source = (Path(__file__).parents[1] / "conformance" / "policies" / "c-wenbao.yaml").read_text("utf-8")
        new = source.replace("id: c-wenbao", "id: c-caogao").replace(
            "小微企业稳岗补贴（示例）", "草稿专用稳岗测试"
        )
        newer = source.replace("version: 1", "version: 2").replace(
            "小微企业稳岗补贴（示例）", "小微企业稳岗补贴第二版"
        )
        for name, text in (("c-caogao.yaml", new), ("c-wenbao.yaml", newer)):
            r = w.client.post(
                "/api/policies", files={"file": (name, text.encode())}, headers=w.auth("policy_hr")
            )
            assert r.status_code == 201, r.text
        assert ids(public, q="草稿") == []
        assert public.get("/policies/c-caogao").status_code == 404
        assert public.get("/api/public/policies/c-caogao").status_code == 404
        assert "草稿专用" not in public.get("/policies", params={"q": "稳岗"}).text
        assert "第二版" not in public.get("/policies/c-wenbao").text  # the draft of version 2 is not shown
        r = w.client.post("/api/policies/c-wenbao/drafts/2/publish", headers=w.auth("policy_hr"))
        assert r.status_code == 200, r.text
        assert "小微企业稳岗补贴第二版" in public.get("/policies/c-wenbao").text
        hits = public.get("/api/public/policies", params={"q": "第二版"}).json()["hits"]
        assert [(h["policy_id"], h["version"]) for h in hits] == [("c-wenbao", 2)]
        assert "小微企业稳岗补贴（示例）" not in public.get("/policies", params={"q": "稳岗"}).text
    finally:
        w.app.state.engine.dispose()


def test_the_index_is_rebuilt_from_the_published_versions(template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path)
    try:
        before = ids(w.client, q="稳岗")
        with transaction(w.app.state.engine) as s:
            supermarket.remove(s, ["c-wenbao"])
        assert ids(w.client, q="稳岗") == []
        with transaction(w.app.state.engine) as s:
            assert w.app.state.store.sync_index(s, NOW) == (1, 0)  # what `create_app` does at start
        assert ids(w.client, q="稳岗") == before
        with transaction(w.app.state.engine) as s:
            n = w.app.state.store.rebuild_index(s, NOW)
        assert n == len(w.app.state.store.list("published"))
        assert ids(w.client, q="稳岗") == before
    finally:
        w.app.state.engine.dispose()


def test_unknown_filter_values_are_refused_with_a_clear_message(market: World) -> None:
    public = TestClient(market.app)
    page = public.get("/policies", params={"category": "奖励"})
    assert page.status_code == 400 and "没有政策分类“奖励”" in page.text
    assert public.get("/policies", params={"region": "4"}).status_code == 400
    assert public.get("/policies", params={"page": "0"}).status_code == 422
    assert public.get("/api/public/policies", params={"category": "奖励"}).status_code == 422
    assert public.get("/api/public/policies", params={"sort": "price"}).status_code == 422
    # Empty form fields (a GET form sends them all) mean "not filtered".
    empty = {"q": "", "category": "", "department": "", "region": "", "industry": "", "size": "", "sort": ""}
    assert public.get("/policies", params=empty).status_code == 200


def test_the_list_page_keeps_the_search_in_its_form_and_pages(market: World) -> None:
    page = TestClient(market.app).get(
        "/policies", params={"q": "企业", "category": "资金奖补", "open": "1", "sort": "amount"}
    )
    assert page.status_code == 200
    assert 'value="企业"' in page.text
    assert '<option value="资金奖补" selected>' in page.text
    assert 'name="open" value="1" checked' in page.text
    assert '<option value="amount" selected>' in page.text
    assert 'href="/policies/gaoxin-changsha"' in page.text


# --- the same search on PostgreSQL (and SQLite), straight on the domain ----------------------------------


def _postgres() -> Iterator[Engine]:
    name = f"zhida_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        message = f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "postgresql":
        yield from _postgres()
        return
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('sm') / 'zhida.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_search_and_filters_give_the_same_answers_on_sqlite_and_postgresql(backend: Engine) -> None:
    library = sorted(load_ruleset(library_dir()), key=lambda p: p.id)
    with transaction(backend) as s:
        supermarket.rebuild(s, [(p, NOW) for p in library], NOW)
        # Publishing again indexes in place: the listing keeps one row per policy.
        supermarket.index_policy(s, library[0], NOW, NOW)

    def found(**kw: Any) -> list[str]:
        with transaction(backend) as s:
            return [h.policy_id for h in supermarket.search(s, Search(**kw), AS_OF).hits]

    assert found(q="稳岗") == [
        "daikuan-fujian-2023",
        "wengang-daikuan-2025",
        "wengang-gansu-2025",
        "wengang-shandong-2025",
        "wengang-2023",
        "wengang-2025",
        "wengang-liaoyuan-2025",
        "wengang-ningxia-2025",
        "wengang-shanxi-2025",
        "wengang-2024",
        "jiangfei-shiye-2025",
    ]
    assert found(q="税") and "gaoxin-changsha" not in found(q="税")
    assert found(q="研发", region="3702") == [
        "jiajikouchu-kxzx-2022"
    ]  # Shandong's excludes 青岛, a national one not
    assert found(q="研发", region="37") == ["jiajikouchu-kxzx-2022", "yanfa-shandong-2025"]
    open_to_farms = found(industry="A", open_only=True, per_page=50)
    # In force longest first (Sichuan's start-up loans to 2027), the 2025 ones by id, then the one ending today.
    assert open_to_farms[0] == "quanyi-chuangye-daikuan-sichuan-2025"
    assert open_to_farms[-1] == "ks-keji-guangan-2025"
    assert open_to_farms[1:-1] == sorted(open_to_farms[1:-1]) and len(open_to_farms) == 29
    assert "shenggui-heilongjiang" not in open_to_farms  # industry B, C and D only
    assert "shenggui-xian" not in open_to_farms
    assert "yanfa-henan-2018" not in open_to_farms  # ended
    assert found(sort="amount")[:4] == [  # equal amounts by id
        "ks-shoutao-sichuan-2025",
        "yanfa-shandong-2025",
        "yanfa-longgang",
        "ks-pingtai-guangan-2025",
    ]
    with transaction(backend) as s:
        assert len(s.scalars(select(PolicyListing)).all()) == len(library)
        page = supermarket.search(s, Search(per_page=3, page=3), AS_OF)
        assert page.total == len(library) and page.pages == -(-len(library) // 3) and len(page.hits) == 3


def test_the_cli_rebuilds_the_index_and_searches_it(template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from api.cli import app

    w = copy_world(template, tmp_path)
    w.app.state.engine.dispose()
    env = {
        "ZHIDA_DATABASE_URL": f"sqlite:///{tmp_path / 'zhida.db'}",
        "ZHIDA_DATA_DIR": str(tmp_path / "web"),
        "ZHIDA_AS_OF": AS_OF.isoformat(),
        "COLUMNS": "200",
    }
    runner = CliRunner()
    r = runner.invoke(app, ["supermarket", "reindex"], env=env)
    assert r.exit_code == 0, r.output
    assert "政策超市索引已重建：7 项政策" in r.output
    r = runner.invoke(app, ["supermarket", "search", "稳岗"], env=env)
    assert r.exit_code == 0, r.output
    assert "c-wenbao" in r.output and "共 1 项" in r.output


def test_a_relief_that_pays_nothing_says_so_instead_of_showing_zero_yuan(market: World) -> None:
    client = TestClient(market.app)
    page = client.get("/policies/canbaojin-2025").text
    assert "符合条件即按规定直接享受，不涉及资金拨付" in page and "按规定直接享受，不涉及资金拨付" in page
    assert "0.00 元" not in page
    listing = client.get("/policies", params={"q": "残疾人就业保障金"}).text
    assert "直接享受，不涉及资金拨付" in listing and "单户最高 <strong>0.00</strong>" not in listing
