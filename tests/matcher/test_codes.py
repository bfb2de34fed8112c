"""The shipped code lists (GB/T 2260 regions, GB/T 4754-2017 industries) and their lookups.

The expected names and ranges below are transcribed from the standards independently of the CSV files,
so a wrong or missing row in data/codes/ makes these tests fail.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import uscc

from matcher.codes import (
    USCC_ALPHABET,
    Industry,
    IndustryList,
    Region,
    RegionList,
    industries,
    industry_leaf_codes,
    industry_name,
    industry_section,
    is_known_industry,
    is_known_region,
    is_uscc,
    known_industry_codes,
    known_region_codes,
    read_industries,
    read_regions,
    region_name,
    regions,
)
from rules.errors import ZhidaError

# GB/T 4754-2017: section letter -> (name, first division, last division).
SECTIONS = {
    "A": ("农、林、牧、渔业", 1, 5),
    "B": ("采矿业", 6, 12),
    "C": ("制造业", 13, 43),
    "D": ("电力、热力、燃气及水生产和供应业", 44, 46),
    "E": ("建筑业", 47, 50),
    "F": ("批发和零售业", 51, 52),
    "G": ("交通运输、仓储和邮政业", 53, 60),
    "H": ("住宿和餐饮业", 61, 62),
    "I": ("信息传输、软件和信息技术服务业", 63, 65),
    "J": ("金融业", 66, 69),
    "K": ("房地产业", 70, 70),
    "L": ("租赁和商务服务业", 71, 72),
    "M": ("科学研究和技术服务业", 73, 75),
    "N": ("水利、环境和公共设施管理业", 76, 79),
    "O": ("居民服务、修理和其他服务业", 80, 82),
    "P": ("教育", 83, 83),
    "Q": ("卫生和社会工作", 84, 85),
    "R": ("文化、体育和娱乐业", 86, 90),
    "S": ("公共管理、社会保障和社会组织", 91, 96),
    "T": ("国际组织", 97, 97),
}

JIANGSU_PREFECTURES = {
    "320100": "南京市",
    "320200": "无锡市",
    "320300": "徐州市",
    "320400": "常州市",
    "320500": "苏州市",
    "320600": "南通市",
    "320700": "连云港市",
    "320800": "淮安市",
    "320900": "盐城市",
    "321000": "扬州市",
    "321100": "镇江市",
    "321200": "泰州市",
    "321300": "宿迁市",
}

HUAIAN_COUNTIES = {
    "320803": "淮安区",
    "320804": "淮阴区",
    "320812": "清江浦区",
    "320813": "洪泽区",
    "320826": "涟水县",
    "320830": "盱眙县",
    "320831": "金湖县",
}


def _code_table(con: duckdb.DuckDBPyConnection, name: str, codes: list[str]) -> None:
    con.execute(f"CREATE TABLE {name} AS SELECT unnest(?::VARCHAR[]) AS code", [codes])


def _children(parent: str) -> dict[str, str]:
    return {r.code: r.name for r in regions().values() if r.parent == parent}


def test_levels_have_plausible_counts() -> None:
    levels = Counter(r.level for r in regions().values())
    assert 31 <= levels["province"] <= 34
    assert 330 <= levels["prefecture"] <= 340
    assert levels["county"] >= 2800


def test_every_mainland_province_is_listed_with_its_name() -> None:
    provinces = {r.code: r.name for r in regions().values() if r.level == "province"}
    mainland = {code for code in provinces if code[:1] != "7" and code[:1] != "8"}
    assert len(mainland) == 31
    assert provinces["320000"] == "江苏省"
    assert provinces["330000"] == "浙江省"
    assert provinces["350000"] == "福建省"
    assert provinces["430000"] == "湖南省"
    assert provinces["650000"] == "新疆维吾尔自治区"


def test_every_unit_hangs_under_a_listed_unit_of_its_own_province() -> None:
    table = regions()
    for region in table.values():
        if region.level == "province":
            assert region.parent is None and region.code.endswith("0000")
            continue
        assert region.parent is not None
        parent = table[region.parent]
        assert parent.code[:2] == region.code[:2]
        if region.level == "prefecture":
            assert parent.level == "province"
        else:
            # Counties of municipalities and province-administered county-level cities hang on the province.
            assert parent.level in ("province", "prefecture")
            assert parent.level == "province" or parent.code[:4] == region.code[:4]


def test_jiangsu_has_its_thirteen_prefectures() -> None:
    assert _children("320000") == JIANGSU_PREFECTURES


def test_huaian_has_its_seven_counties() -> None:
    assert _children("320800") == HUAIAN_COUNTIES


@pytest.mark.parametrize(
    ("province", "prefectures"), [("320000", 13), ("330000", 11), ("350000", 9), ("430000", 14)]
)
def test_the_four_provinces_ship_every_prefecture_with_counties(province: str, prefectures: int) -> None:
    cities = _children(province)
    assert len(cities) == prefectures
    for city in cities:
        assert _children(city), f"{city} {cities[city]} has no counties"


def test_prefecture_names_nationally() -> None:
    assert region_name("441900") == "东莞市"
    assert region_name("460400") == "儋州市"
    assert region_name("650100") == "乌鲁木齐市"
    assert region_name("330100") == "杭州市"
    assert region_name("430100") == "长沙市"
    assert region_name("350200") == "厦门市"


def test_region_lookups() -> None:
    assert is_known_region("320812")
    assert is_known_region("110105")  # a district of a municipality
    assert is_known_region("429004")  # 仙桃市, administered by the province directly
    assert not is_known_region("320811")  # 清浦区, retired in 2016
    assert not is_known_region("320899")
    assert not is_known_region("32081")
    assert not is_known_region("")
    assert region_name("320813") == "洪泽区"
    assert region_name("320811") is None


def test_county_of_a_province_without_counties_is_known_by_its_prefecture() -> None:
    small = RegionList(
        {
            "320000": Region("320000", "江苏省", "province", None),
            "320800": Region("320800", "淮安市", "prefecture", "320000"),
            "320812": Region("320812", "清江浦区", "county", "320800"),
            "330000": Region("330000", "浙江省", "province", None),
            "330100": Region("330100", "杭州市", "prefecture", "330000"),
        }
    )
    assert small.is_known("330106")  # Zhejiang ships no counties here: the prefecture vouches
    assert small.name("330106") is None
    assert not small.is_known("330206")  # no such prefecture
    assert not small.is_known("330200")
    assert not small.is_known("320811")  # Jiangsu ships counties: exact codes only


def test_sql_join_on_known_region_codes_agrees_with_the_lookup() -> None:
    samples = [*regions(), "320811", "330206", "810101", "710100", "999999", "110100", "469000"]
    con = duckdb.connect()
    _code_table(con, "known", known_region_codes())
    _code_table(con, "sample", samples)
    rows = con.execute(
        "SELECT s.code, k.code IS NOT NULL FROM sample s LEFT JOIN known k USING (code)"
    ).fetchall()
    assert {code: known for code, known in rows} == {code: is_known_region(code) for code in samples}


def test_twenty_sections_with_their_names() -> None:
    sections = {i.code: i.name for i in industries().values() if i.level == "section"}
    assert sections == {letter: name for letter, (name, _, _) in SECTIONS.items()}


def test_all_97_divisions_in_their_sections() -> None:
    divisions = {i.code for i in industries().values() if i.level == "division"}
    expected = {
        f"{letter}{n:02d}" for letter, (_, first, last) in SECTIONS.items() for n in range(first, last + 1)
    }
    assert len(expected) == 97
    assert divisions == expected
    assert all(industries()[code].section == code[0] for code in divisions)


def test_division_names_of_the_2017_edition() -> None:
    assert industry_name("A05") == "农、林、牧、渔专业及辅助性活动"
    assert industry_name("B11") == "开采专业及辅助性活动"
    assert industry_name("C13") == "农副食品加工业"
    assert industry_name("C39") == "计算机、通信和其他电子设备制造业"
    assert industry_name("C43") == "金属制品、机械和设备修理业"
    assert industry_name("I65") == "软件和信息技术服务业"
    assert industry_name("K70") == "房地产业"
    assert industry_name("N79") == "土地管理业"  # new in 2017
    assert industry_name("O80") == "居民服务业"  # 79 in the 2011 edition
    assert industry_name("Q85") == "社会工作"
    assert industry_name("T97") == "国际组织"


@pytest.mark.parametrize("code", ["C", "C39", "C391", "C3911", "K702", "N79", "T97", "A0511"])
def test_known_industry_codes(code: str) -> None:
    assert is_known_industry(code)
    assert industry_section(code) == code[0]


@pytest.mark.parametrize("code", ["A39", "C12", "C44", "C99", "U", "C39111", "C3", "c39", "3911", " C39", ""])
def test_unknown_industry_codes(code: str) -> None:
    assert not is_known_industry(code)
    assert industry_section(code) is None
    assert industry_name(code) is None


def test_industry_name_is_that_of_the_longest_listed_prefix() -> None:
    assert industry_name("C3911") == "计算机、通信和其他电子设备制造业"
    assert industry_name("C") == "制造业"


def test_listed_groups_and_classes_must_match_exactly() -> None:
    rows = [
        ("C", "制造业", "section"),
        ("C13", "农副食品加工业", "division"),
        ("C39", "计算机、通信和其他电子设备制造业", "division"),
        ("C391", "计算机制造", "group"),
        ("C3911", "计算机整机制造", "class"),
        ("C392", "通信设备制造", "group"),
    ]
    deep = IndustryList({code: Industry(code, name, level, "C") for code, name, level in rows})
    assert deep.is_known("C3911")
    assert not deep.is_known("C3912")  # C391 lists its classes
    assert not deep.is_known("C393")  # C39 lists its groups
    assert deep.is_known("C3921")  # C392 lists no classes
    assert deep.is_known("C1311")  # C13 lists no groups
    assert deep.name("C3921") == "通信设备制造"


def test_sql_rule_on_known_industry_codes_agrees_with_the_lookup() -> None:
    samples = [
        *known_industry_codes(),
        "C3911",
        "C391",
        "A39",
        "C99",
        "C39111",
        "U",
        "3911",
        "K702",
        "c39",
        "T9701",
    ]
    con = duckdb.connect()
    _code_table(con, "known", known_industry_codes())
    _code_table(con, "leaf", industry_leaf_codes())
    _code_table(con, "sample", samples)
    rows = con.execute(
        """
        SELECT s.code,
               s.code IN (SELECT code FROM known)
               OR (regexp_full_match(s.code, '[A-Z]([0-9]{2,4})?')
                   AND EXISTS (SELECT 1 FROM leaf l WHERE starts_with(s.code, l.code)))
        FROM sample s
        """
    ).fetchall()
    assert {code: known for code, known in rows} == {code: is_known_industry(code) for code in samples}


def test_a_uscc_built_from_a_known_region_validates() -> None:
    body = "91" + "320812" + "MA1XXXXX" + "0"
    code = body + uscc.calc_check_digit(body)
    assert uscc.is_valid(code)
    assert is_known_region(code[2:8])
    assert is_known_region(uscc.compact("91110000600037341L")[2:8])  # stdnum's documented example


def test_a_broken_region_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "regions.csv"
    path.write_text(
        "code,name,level,parent\n320000,江苏省,province,\n320812,清江浦区,county,320800\n", encoding="utf-8"
    )
    with pytest.raises(ZhidaError, match="320812 has parent 320800"):
        read_regions(path)


def test_a_broken_industry_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "industries.csv"
    path.write_text("code,name,level,section\nC,制造业,section,C\nC3,错,division,C\n", encoding="utf-8")
    with pytest.raises(ZhidaError, match=r"industries.csv:3: .*'C3'"):
        read_industries(path)


@settings(max_examples=500, deadline=None)
@given(
    body=st.text(alphabet="0123456789", min_size=8, max_size=8),
    rest=st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9),
    check=st.sampled_from(USCC_ALPHABET + "IOSVZ"),
)
def test_the_python_uscc_check_is_gb32100_as_stdnum_reads_it(body: str, rest: str, check: str) -> None:
    code = body + rest + check
    assert is_uscc(code) == uscc.is_valid(code)


def test_the_python_uscc_check_refuses_what_is_not_in_canonical_form() -> None:
    assert is_uscc("91110000600037341L")  # stdnum's documented example
    assert not is_uscc("91110000600037341l")  # lower case: the sign-in upper-cases before asking
    assert not is_uscc("9111000060003734")  # too short
    assert not is_uscc("91110000600037341I")  # I is not in the alphabet
