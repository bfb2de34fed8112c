"""Synthetic registry snapshots (Contract 2) for demos, tests and scale runs.

`generate_snapshot` writes one Parquet file per table plus `snapshot.yaml`, for a prefecture-level city
that exists: Huai'an (淮安市), its seven counties and a manufacturing-heavy mix of GB/T 4754-2017 classes.
Sizes are lognormal and consistent across tables (employees, revenue, assets, insured staff, premiums,
taxes, R&D), rates of certificates, blacklisting, arrears and missing values are realistic, and a small
share of rows is deliberately bad so that snapshot validation has work: about 0.1% each of wrong USCC
check characters, duplicated USCCs, unknown region codes (`329999`), unknown industry codes (`C9999`),
negative revenue and registration dates after `taken_at`.

How it scales: enterprises are generated in fixed blocks of `BLOCK_ROWS`, vectorised with numpy and
pyarrow (faker is used once, to build pools of name parts), each block from its own random stream seeded
by (seed, block index). A chunk of blocks is written as one Parquet row group per table (zstd) by a second
thread while the next chunk is generated, then dropped, so memory stays flat whatever the number of
enterprises (about 0.8 GB peak with the default chunk of 500,000). The content depends only on the seed,
the number of enterprises and `taken_at` (and the installed numpy, pyarrow and faker); `chunk_size` only
sets the row-group size, and the same arguments give byte-identical files.

USCCs are `9` (market regulation) + `1` (enterprise) + the county code + a 9-character organisation code
+ the GB 32100 check character. The organisation code is 8 characters of the GB 32100 alphabet with its
GB 11714 check character; the 8 characters encode a seeded permutation of the enterprise's index, so codes
never collide by chance and the only duplicates are the deliberate ones.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from faker.providers.company.zh_CN import Provider as CompanyProvider
from faker.providers.person.zh_CN import Provider as PersonProvider

from matcher import codes
from matcher.codes import USCC_ALPHABET
from matcher.sizeclass import YUAN_PER_WAN, scale_bound_for
from rules.catalog import CERT_TYPES, DEPARTMENTS, STATUSES
from rules.errors import SnapshotError

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

BLOCK_ROWS = 25_000
"""Enterprises per generation block: the unit of randomness, so chunk_size cannot change the content."""

DEFAULT_TAKEN_AT = dt.date(2025, 9, 30)
BAD_SHARE = 0.001
"""Share of enterprises for each kind of deliberately bad row."""

PAYMENTS_TARGET = 350
"""About how many enterprises draw an earlier payout, whatever the snapshot size."""

MONEY = pa.decimal128(18, 2)
USCC_WEIGHTS = np.array(codes.USCC_WEIGHTS, dtype=np.int64)
"""`matcher.codes.USCC_WEIGHTS` as an array, for the check characters of whole blocks at once."""
ORG_CODE_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
"""GB 11714-1997 weights of the 8 body characters of an organisation code."""
_ORG_BODY_SPACE = 31**8

# ---------------------------------------------------------------------------------------------------------
# Table schemas (Contract 2)

SCHEMAS: dict[str, pa.Schema] = {
    "enterprises": pa.schema(
        [
            ("uscc", pa.string()),
            ("name", pa.string()),
            ("reg_date", pa.date32()),
            ("region_code", pa.string()),
            ("industry_code", pa.string()),
            ("status", pa.string()),
            ("reg_capital", MONEY),
            ("contact_phone", pa.string()),
        ]
    ),
    "annual_reports": pa.schema(
        [
            ("uscc", pa.string()),
            ("year", pa.int32()),
            ("employees", pa.int64()),
            ("revenue", MONEY),
            ("total_assets", MONEY),
        ]
    ),
    "tax": pa.schema(
        [
            ("uscc", pa.string()),
            ("year", pa.int32()),
            ("tax_paid", MONEY),
            ("rd_expense", MONEY),
            ("credit_rating", pa.string()),
        ]
    ),
    "social_insurance": pa.schema(
        [
            ("uscc", pa.string()),
            ("year", pa.int32()),
            ("insured_start", pa.int64()),
            ("insured_end", pa.int64()),
            ("ui_premium_paid", MONEY),
            ("ui_arrears", pa.bool_()),
            ("new_graduate_hires", pa.int64()),
        ]
    ),
    "credit": pa.schema(
        [("uscc", pa.string()), ("serious_dishonest", pa.bool_()), ("abnormal_operation", pa.bool_())]
    ),
    "certifications": pa.schema(
        [
            ("uscc", pa.string()),
            ("cert_type", pa.string()),
            ("cert_date", pa.date32()),
            ("expiry_date", pa.date32()),
        ]
    ),
    "stats_listing": pa.schema([("uscc", pa.string()), ("year", pa.int32()), ("above_scale", pa.bool_())]),
    "bank_accounts": pa.schema(
        [
            ("uscc", pa.string()),
            ("bank_name", pa.string()),
            ("account_no", pa.string()),
            ("account_name", pa.string()),
        ]
    ),
    "payments": pa.schema(
        [
            ("uscc", pa.string()),
            ("policy_id", pa.string()),
            ("item_id", pa.string()),
            ("period", pa.string()),
            ("amount", MONEY),
        ]
    ),
}
TABLES = tuple(SCHEMAS)

# Low-cardinality columns that Parquet should dictionary-encode; the rest (codes, names) are near-unique.
_DICTIONARY_COLUMNS = [
    "year",
    "region_code",
    "industry_code",
    "status",
    "credit_rating",
    "cert_type",
    "bank_name",
    "policy_id",
    "item_id",
    "period",
]

# ---------------------------------------------------------------------------------------------------------
# The city: counties of Huai'an (GB/T 2260) with their share of registered enterprises


@dataclass(frozen=True)
class County:
    """A county-level unit: code, name, the prefix local firms use in names, bank branch, weight, and the
    city and province it lies in (short names), which firm names start with too."""

    code: str
    name: str
    name_prefix: str
    branch: str
    weight: float
    city: str = "淮安"
    province: str = "江苏"


COUNTIES = (
    County("320803", "淮安区", "淮安市淮安区", "楚州", 0.17),
    County("320804", "淮阴区", "淮安市淮阴区", "淮阴", 0.15),
    County("320812", "清江浦区", "淮安市清江浦区", "清江浦", 0.27),
    County("320813", "洪泽区", "淮安市洪泽区", "洪泽", 0.08),
    County("320826", "涟水县", "涟水县", "涟水", 0.14),
    County("320830", "盱眙县", "盱眙县", "盱眙", 0.10),
    County("320831", "金湖县", "金湖县", "金湖", 0.09),
    # A small tail registered in the other cities whose policies the bundled library carries, so that
    # every library policy has enterprises to reach in the demo (about 12% of all enterprises).
    County("430102", "长沙市芙蓉区", "长沙市芙蓉区", "长沙芙蓉", 0.015, "长沙", "湖南"),
    County("430702", "常德市武陵区", "常德市武陵区", "常德武陵", 0.012, "常德", "湖南"),
    County("230102", "哈尔滨市道里区", "哈尔滨市道里区", "哈尔滨道里", 0.012, "哈尔滨", "黑龙江"),
    County("370102", "济南市历下区", "济南市历下区", "济南历下", 0.012, "济南", "山东"),
    County("350102", "福州市鼓楼区", "福州市鼓楼区", "福州鼓楼", 0.012, "福州", "福建"),
    County("410102", "郑州市中原区", "郑州市中原区", "郑州中原", 0.012, "郑州", "河南"),
    County("140105", "太原市小店区", "太原市小店区", "太原小店", 0.012, "太原", "山西"),
    County("620102", "兰州市城关区", "兰州市城关区", "兰州城关", 0.012, "兰州", "甘肃"),
    County("220402", "辽源市龙山区", "辽源市龙山区", "辽源龙山", 0.012, "辽源", "吉林"),
    County("640104", "银川市兴庆区", "银川市兴庆区", "银川兴庆", 0.012, "银川", "宁夏"),
    County("440307", "深圳市龙岗区", "深圳市龙岗区", "深圳龙岗", 0.012, "深圳", "广东"),
    County("610102", "西安市新城区", "西安市新城区", "西安新城", 0.012, "西安", "陕西"),
    County("511602", "广安市广安区", "广安市广安区", "广安", 0.012, "广安", "四川"),
)
UNKNOWN_REGION = "329999"
UNKNOWN_INDUSTRY = "C9999"

# ---------------------------------------------------------------------------------------------------------
# Industries: size profiles and a class mix


@dataclass(frozen=True)
class SizeProfile:
    """How big firms of a kind are: lognormal medians and spreads, R&D habits, certificate candidacy."""

    employees: float  # median headcount
    employees_sigma: float
    revenue_per_head: float  # median yearly revenue per person, yuan
    revenue_sigma: float
    assets_ratio: float  # median total assets / revenue
    assets_sigma: float
    rd_share: float  # share of firms reporting R&D expense
    rd_ratio: float  # median R&D expense / revenue among them
    tech: bool  # candidates for 高新技术/科技型中小/专精特新 certificates


PROFILES: dict[str, SizeProfile] = {
    "agriculture": SizeProfile(5, 1.1, 200_000, 0.8, 1.5, 0.6, 0.03, 0.01, False),
    "mining": SizeProfile(12, 1.2, 400_000, 0.7, 2.0, 0.5, 0.10, 0.01, False),
    "manufacturing": SizeProfile(8, 1.5, 300_000, 0.7, 1.0, 0.5, 0.45, 0.03, True),
    "utilities": SizeProfile(15, 1.3, 800_000, 0.8, 3.0, 0.6, 0.10, 0.01, False),
    "construction": SizeProfile(10, 1.4, 400_000, 0.9, 1.2, 0.6, 0.05, 0.01, False),
    "wholesale": SizeProfile(4, 1.0, 600_000, 1.0, 0.6, 0.6, 0.02, 0.005, False),
    "retail": SizeProfile(3, 1.0, 300_000, 0.8, 0.5, 0.6, 0.0, 0.0, False),
    "transport": SizeProfile(8, 1.3, 300_000, 0.8, 1.5, 0.6, 0.02, 0.005, False),
    "hospitality": SizeProfile(4, 1.0, 100_000, 0.6, 0.8, 0.6, 0.0, 0.0, False),
    "internet": SizeProfile(5, 1.3, 400_000, 1.0, 1.0, 0.6, 0.5, 0.05, True),
    "software": SizeProfile(5, 1.3, 400_000, 0.9, 0.9, 0.6, 0.7, 0.06, True),
    "finance": SizeProfile(6, 1.2, 800_000, 1.0, 5.0, 1.0, 0.02, 0.005, False),
    "real_estate": SizeProfile(10, 1.2, 2_000_000, 1.2, 4.0, 0.7, 0.0, 0.0, False),
    "property": SizeProfile(15, 1.3, 80_000, 0.6, 0.5, 0.6, 0.0, 0.0, False),
    "business": SizeProfile(4, 1.2, 300_000, 1.1, 1.5, 0.9, 0.03, 0.01, False),
    "technical": SizeProfile(5, 1.2, 250_000, 0.9, 0.9, 0.6, 0.5, 0.05, True),
    "services": SizeProfile(5, 1.1, 150_000, 0.8, 1.0, 0.6, 0.01, 0.005, False),
    "education": SizeProfile(10, 1.0, 150_000, 0.6, 1.0, 0.6, 0.02, 0.01, False),
    "health": SizeProfile(12, 1.2, 200_000, 0.7, 1.0, 0.6, 0.05, 0.01, False),
}
"""Medians are set so that roughly a tenth of a kind is above its 规上/限上 revenue bound."""

ANCHOR_SHARE = 0.001
"""Share of firms in industry, building, transport and trade that are anchor firms of a thousand or more."""
ANCHOR_PROFILES = ("manufacturing", "utilities", "construction", "transport", "wholesale", "retail")

# Share of registered enterprises by mix group (section, or F51/F52, I63/I64/I65, K701/K702): a
# manufacturing-heavy prefecture where trade still has the most firms, as in Jiangsu's northern cities.
GROUP_WEIGHTS = {
    "A": 4.0,
    "B": 0.4,
    "C": 22.0,
    "D": 1.2,
    "E": 9.0,
    "F51": 17.0,
    "F52": 9.0,
    "G": 4.5,
    "H": 3.0,
    "I63": 0.3,
    "I64": 1.2,
    "I65": 3.0,
    "J": 0.8,
    "K701": 1.5,
    "K702": 1.5,
    "L": 9.0,
    "M": 5.5,
    "N": 1.2,
    "O": 2.5,
    "P": 0.8,
    "Q": 0.6,
    "R": 1.5,
}

# GB/T 4754-2017 classes: code, weight within its group, size profile, name stems (| separated).
INDUSTRY_TABLE = Path(__file__).resolve().parents[1] / "data" / "synthetic" / "industries.txt"


@dataclass(frozen=True)
class IndustryClass:
    """One GB/T 4754-2017 class in the mix: code, share of enterprises, size profile, name stems."""

    code: str
    weight: float
    profile: str
    stems: tuple[str, ...]

    @property
    def group(self) -> str:
        """The mix group: section letter, or F51/F52, I63/I64/I65, K701/K702 as the size table splits them."""
        if self.code[0] in "FI":
            return self.code[:3]
        if self.code[0] == "K":
            return self.code[:4]
        return self.code[0]


def _industry_mix() -> tuple[IndustryClass, ...]:
    """The classes with weights normalised so that each group gets its GROUP_WEIGHTS share."""
    lines = INDUSTRY_TABLE.read_text(encoding="utf-8").splitlines()
    rows = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    raw = [
        IndustryClass(code, float(w), profile, tuple(stems.split("|"))) for code, w, profile, stems in rows
    ]
    totals: dict[str, float] = {}
    for c in raw:
        totals[c.group] = totals.get(c.group, 0.0) + c.weight
    grand = sum(GROUP_WEIGHTS.values())
    return tuple(
        IndustryClass(c.code, GROUP_WEIGHTS[c.group] / grand * c.weight / totals[c.group], c.profile, c.stems)
        for c in raw
    )


INDUSTRIES = _industry_mix()

# ---------------------------------------------------------------------------------------------------------
# Other mixes

STATUS_WEIGHTS = dict(zip(STATUSES, (0.60, 0.31, 0.012, 0.03, 0.048), strict=True))
"""存续 and 在业 (active) dominate; 迁出 (moved away), 吊销 (licence revoked) and 注销 (deregistered) are rare."""
RATINGS = ("A", "B", "M", "C", "D")
RATING_WEIGHTS_ESTABLISHED = (0.28, 0.52, 0.10, 0.06, 0.04)
RATING_WEIGHTS_NEW = (0.0, 0.15, 0.80, 0.03, 0.02)
"""Firms younger than two years are mostly rated M (新设立企业)."""


@dataclass(frozen=True)
class Bank:
    """A bank with branches in Huai'an: how branch names start, its main office there, account prefix."""

    branch_prefix: str
    main_office: str
    account_prefix: str
    weight: float


BANKS = (
    Bank("中国工商银行淮安", "中国工商银行淮安分行营业部", "1109", 0.16),
    Bank("中国农业银行淮安", "中国农业银行淮安分行营业部", "1036", 0.16),
    Bank("中国银行淮安", "中国银行淮安分行营业部", "5078", 0.10),
    Bank("中国建设银行淮安", "中国建设银行淮安分行营业部", "3205", 0.14),
    Bank("交通银行淮安", "交通银行淮安分行营业部", "3260", 0.06),
    Bank("江苏银行淮安", "江苏银行淮安分行营业部", "2001", 0.10),
    Bank("江苏淮安农村商业银行", "江苏淮安农村商业银行营业部", "3208", 0.14),
    Bank("中国邮政储蓄银行淮安", "中国邮政储蓄银行淮安分行营业部", "9320", 0.05),
    Bank("南京银行淮安", "南京银行淮安分行营业部", "0801", 0.04),
    Bank("兴业银行淮安", "兴业银行淮安分行营业部", "4080", 0.03),
    Bank("招商银行淮安", "招商银行淮安分行营业部", "5179", 0.02),
)

REG_CAPITAL_LADDER = np.array(
    [1e5, 3e5, 5e5, 1e6, 2e6, 3e6, 5e6, 1e7, 2e7, 3e7, 5e7, 1e8, 2e8, 5e8, 1e9], dtype=np.float64
)
"""Registered capital is usually a round figure (yuan)."""

NAME_SUFFIXES = ("有限公司", "有限责任公司", "股份有限公司")

# Characters that Chinese trade names (字号) favour, besides the ones faker's zh_CN pools give.
_TRADE_NAME_CHARS = "鑫恒盛达华通宏泰利源丰汇兴德瑞隆发昌顺祥福金益康嘉荣宇博创新远海天正信诚安和永佳美中光明东方大成亿万润晟鼎联合众立凯腾辉"


@dataclass(frozen=True)
class Payout:
    """An earlier payout kind for the payments table: which policy item, for which year, how often."""

    policy: str  # slug; the policy id is `<policy>-<assessment year + year_offset>`
    year_offset: int
    item_id: str
    weight: float

    def policy_id(self, assessment_year: int) -> str:
        return f"{self.policy}-{assessment_year + self.year_offset}"


PAYOUTS = (
    Payout("wengang", 1, "sme", 0.55),  # 稳岗返还: 60% of the assessment year's UI premium
    Payout("kuogang", 1, "per_hire", 0.25),  # 扩岗补助: 1,500 yuan per graduate hired
    Payout("yanfa", 0, "rd", 0.20),  # 研发补助: 10% of R&D expense, at most 1,000,000 yuan
)
"""By default wengang-2025, kuogang-2025 and yanfa-2024; the period is the policy's year, and a fifth of
the refunds were paid for the year before (another period, which must not block this one)."""


# ---------------------------------------------------------------------------------------------------------
# Pools built once per snapshot


@dataclass(frozen=True)
class _Pools:
    """Everything per-row generation draws from, as arrays ready for vectorised choice."""

    enterprises: int
    taken_at: int  # days since 1970-01-01
    years: tuple[int, int]
    year_ends: tuple[int, int]  # days of 31 December of each year
    org_multiplier: int
    org_offset: int
    county_library: Bools  # per county: in one of the library's other cities, not Huai'an
    county_p: Floats
    county_digits: npt.NDArray[np.uint8]  # (counties, 6) ASCII
    region_codes: pa.Array  # counties then UNKNOWN_REGION
    industry_p: Floats
    industry_codes: pa.Array  # classes then UNKNOWN_INDUSTRY
    scale_bound: Ints  # per class: the 规上/限上 revenue bound in fen, or -1 where revenue does not set it
    industry_profile: Ints  # profile index per class
    stem_start: Ints
    stem_count: Ints
    stems: pa.Array
    profile_values: dict[str, Floats]  # field -> value per profile index
    profile_tech: Bools
    profile_anchor: Bools
    prefixes: pa.Array  # (county, option) flattened
    trade_names: pa.Array
    suffixes: pa.Array
    statuses: pa.Array
    status_p: Floats
    ratings: pa.Array
    cert_types: pa.Array
    bank_p: Floats
    bank_names: pa.Array  # (bank, county, main office?) flattened
    bank_prefix_digits: npt.NDArray[np.uint8]  # (banks, 4) ASCII
    payout_policy: pa.Array
    payout_year: Ints
    payout_item: pa.Array
    payout_p: Floats


def _days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _trade_names() -> list[str]:
    """Two-character trade names (字号) from faker's zh_CN name pools and common business characters."""
    chars: list[str] = []
    for c in [n for n in PersonProvider.first_names if len(n) == 1] + list(_TRADE_NAME_CHARS):
        if c not in chars:
            chars.append(c)
    prefixes = [
        p
        for p in dict.fromkeys(CompanyProvider.company_prefixes)
        if len(p) == 2 and all("\u4e00" <= ch <= "\u9fff" for ch in p)
    ]
    rng = np.random.default_rng(20250930)  # a fixed pool: names do not depend on the snapshot seed
    first = rng.integers(0, len(chars), 4000)
    second = rng.integers(0, len(chars), 4000)
    combos = [chars[a] + chars[b] for a, b in zip(first.tolist(), second.tolist(), strict=True) if a != b]
    return list(dict.fromkeys(prefixes + combos))


def _scale_bound_fen(industry_code: str) -> int:
    bound = scale_bound_for(industry_code)
    return -1 if bound is None else bound.revenue * YUAN_PER_WAN * 100


def _build_pools(seed: int, enterprises: int, taken_at: dt.date) -> _Pools:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    org_multiplier = int(rng.integers(1, _ORG_BODY_SPACE))
    while org_multiplier % 31 == 0:  # must be a unit modulo 31^8 for the map to be a permutation
        org_multiplier += 1
    years = (taken_at.year - 2, taken_at.year - 1)

    county_p = np.array([c.weight for c in COUNTIES])
    industry_p = np.array([c.weight for c in INDUSTRIES])
    profile_names = list(PROFILES)
    stems: list[str] = []
    stem_start: list[int] = []
    for c in INDUSTRIES:
        stem_start.append(len(stems))
        stems.extend(c.stems)
    prefix_options = [(c.city, f"{c.city}市", c.province, c.name_prefix) for c in COUNTIES]
    bank_names = [
        name for b in BANKS for c in COUNTIES for name in (f"{b.branch_prefix}{c.branch}支行", b.main_office)
    ]
    return _Pools(
        enterprises=enterprises,
        taken_at=_days(taken_at),
        years=years,
        year_ends=(_days(dt.date(years[0], 12, 31)), _days(dt.date(years[1], 12, 31))),
        org_multiplier=org_multiplier,
        org_offset=int(rng.integers(0, _ORG_BODY_SPACE)),
        county_p=county_p / county_p.sum(),
        county_library=np.array([c.city != "淮安" for c in COUNTIES]),
        county_digits=np.array([list(c.code.encode()) for c in COUNTIES], dtype=np.uint8),
        region_codes=pa.array([c.code for c in COUNTIES] + [UNKNOWN_REGION]),
        industry_p=industry_p / industry_p.sum(),
        industry_codes=pa.array([c.code for c in INDUSTRIES] + [UNKNOWN_INDUSTRY]),
        scale_bound=np.array([_scale_bound_fen(c.code) for c in INDUSTRIES] + [-1], dtype=np.int64),
        industry_profile=np.array([profile_names.index(c.profile) for c in INDUSTRIES], dtype=np.int64),
        stem_start=np.array(stem_start, dtype=np.int64),
        stem_count=np.array([len(c.stems) for c in INDUSTRIES], dtype=np.int64),
        stems=pa.array(stems),
        profile_values={
            field: np.array([getattr(PROFILES[p], field) for p in profile_names], dtype=np.float64)
            for field in (
                "employees",
                "employees_sigma",
                "revenue_per_head",
                "revenue_sigma",
                "assets_ratio",
                "assets_sigma",
                "rd_share",
                "rd_ratio",
            )
        },
        profile_tech=np.array([PROFILES[p].tech for p in profile_names]),
        profile_anchor=np.array([p in ANCHOR_PROFILES for p in profile_names]),
        prefixes=pa.array([p for options in prefix_options for p in options]),
        trade_names=pa.array(_trade_names()),
        suffixes=pa.array(NAME_SUFFIXES),
        statuses=pa.array(list(STATUS_WEIGHTS)),
        status_p=np.array(list(STATUS_WEIGHTS.values())) / sum(STATUS_WEIGHTS.values()),
        ratings=pa.array(RATINGS),
        cert_types=pa.array(CERT_TYPES),
        bank_p=np.array([b.weight for b in BANKS]) / sum(b.weight for b in BANKS),
        bank_names=pa.array(bank_names),
        bank_prefix_digits=np.array([list(b.account_prefix.encode()) for b in BANKS], dtype=np.uint8),
        payout_policy=pa.array([p.policy_id(years[1]) for p in PAYOUTS]),
        payout_year=np.array([years[1] + p.year_offset for p in PAYOUTS], dtype=np.int64),
        payout_item=pa.array([p.item_id for p in PAYOUTS]),
        payout_p=np.array([p.weight for p in PAYOUTS]) / sum(p.weight for p in PAYOUTS),
    )


# ---------------------------------------------------------------------------------------------------------
# Arrow builders from numpy, without per-row Python


def _bitmap(valid: Bools | None) -> pa.Buffer | None:
    if valid is None or bool(valid.all()):
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _null_count(valid: Bools | None) -> int:
    return 0 if valid is None else int(valid.size - np.count_nonzero(valid))


def _ascii(chars: npt.NDArray[np.uint8], valid: Bools | None = None) -> pa.Array:
    """A string array from an (n, width) matrix of ASCII bytes: every string has the same width."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(chars))
    return pa.Array.from_buffers(
        pa.string(), n, [_bitmap(valid), pa.py_buffer(offsets), data], null_count=_null_count(valid)
    )


def _money(fen: Ints, valid: Bools | None = None) -> pa.Array:
    """A DECIMAL(18,2) array from integer fen: the unscaled 128-bit value is the fen amount."""
    words = np.empty((fen.size, 2), dtype=np.int64)
    words[:, 0] = fen
    words[:, 1] = fen >> 63  # sign extension into the high word (two's complement, little-endian)
    return pa.Array.from_buffers(
        MONEY, fen.size, [_bitmap(valid), pa.py_buffer(words)], null_count=_null_count(valid)
    )


def _date(days: Ints, valid: Bools | None = None) -> pa.Array:
    return pa.array(days.astype("datetime64[D]"), type=pa.date32(), mask=None if valid is None else ~valid)


def _int(values: Ints, valid: Bools | None = None, type_: pa.DataType | None = None) -> pa.Array:
    return pa.array(values, type=type_ or pa.int64(), mask=None if valid is None else ~valid)


def _bool(values: Bools, valid: Bools | None = None) -> pa.Array:
    return pa.array(values, type=pa.bool_(), mask=None if valid is None else ~valid)


def _take(pool: pa.Array, index: Ints, valid: Bools | None = None) -> pa.Array:
    """Vectorised choice from a pool of strings."""
    indices = pa.array(index.astype(np.int32), mask=None if valid is None else ~valid)
    return pool.take(indices)


def _fen(yuan: Floats) -> Ints:
    return np.rint(np.clip(yuan, -1e13, 1e13) * 100).astype(np.int64)


def _add_years(days: Ints, years: int) -> Ints:
    """The same calendar day `years` later (29 February becomes 28 February)."""
    d = days.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day_of_month = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.timedelta64(12 * years, "M")
    month_len = (
        (target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")
    ).astype(np.int64)
    expiry: Ints = target.astype("datetime64[D]").astype(np.int64) + np.minimum(day_of_month, month_len - 1)
    return expiry


# ---------------------------------------------------------------------------------------------------------
# USCC


def _char_values() -> Ints:
    """Lookup from ASCII byte to GB 32100 value (-1 outside the alphabet)."""
    table = np.full(256, -1, dtype=np.int64)
    for value, ch in enumerate(USCC_ALPHABET):
        table[ord(ch)] = value
    return table


_ALPHABET_BYTES = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
_CHAR_VALUES = _char_values()
_GB11714_VALUES = np.array([int(ch, 36) for ch in USCC_ALPHABET], dtype=np.int64)
"""GB 11714 values of the alphabet: digits as such, A=10 ... Y=34."""


def uscc_check_values(values: Ints) -> Ints:
    """GB 32100 check values for an (n, 17) matrix of character values: (31 - sum(v * 3^i) mod 31) mod 31."""
    return (31 - (values @ USCC_WEIGHTS) % 31) % 31


def _mulmod(a: int, x: Ints, m: int) -> Ints:
    """(a * x) mod m in int64 for a, x < m < 2^40, by splitting x into 20-bit halves."""
    high, low = x >> 20, x & ((1 << 20) - 1)
    return ((((a * high) % m) << 20) % m + (a * low) % m) % m


def _organisation_codes(index: Ints, pools: _Pools) -> npt.NDArray[np.uint8]:
    """(n, 9) ASCII organisation codes: 8 characters from a permutation of the index, GB 11714 check last."""
    body = (_mulmod(pools.org_multiplier, index, _ORG_BODY_SPACE) + pools.org_offset) % _ORG_BODY_SPACE
    digits = np.empty((index.size, 8), dtype=np.int64)
    for i in range(7, -1, -1):
        body, digits[:, i] = np.divmod(body, 31)
    check = 11 - (_GB11714_VALUES[digits] @ ORG_CODE_WEIGHTS) % 11
    out = np.empty((index.size, 9), dtype=np.uint8)
    out[:, :8] = _ALPHABET_BYTES[digits]
    out[:, 8] = np.where(check == 10, ord("X"), np.where(check == 11, ord("0"), ord("0") + check % 10))
    return out


def _usccs(
    index: Ints, county: Ints, wrong_check: Bools, rng: np.random.Generator, pools: _Pools
) -> pa.Array:
    chars = np.empty((index.size, 18), dtype=np.uint8)
    chars[:, 0] = ord("9")
    chars[:, 1] = ord("1")
    chars[:, 2:8] = pools.county_digits[county]
    chars[:, 8:17] = _organisation_codes(index, pools)
    check = uscc_check_values(_CHAR_VALUES[chars[:, :17]])
    shift = rng.integers(1, 31, index.size)
    chars[:, 17] = _ALPHABET_BYTES[np.where(wrong_check, (check + shift) % 31, check)]
    return _ascii(chars)


# ---------------------------------------------------------------------------------------------------------
# One block of enterprises


def _pick(rng: np.random.Generator, p: Floats, n: int) -> Ints:
    """Indices drawn with probabilities p (inverse-CDF on uniforms)."""
    cdf = np.cumsum(p)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), p.size - 1).astype(
        np.int64
    )


def _lognormal(rng: np.random.Generator, median: Floats | float, sigma: Floats | float, n: int) -> Floats:
    return np.exp(np.log(median) + sigma * rng.standard_normal(n))


def _interleave(first: npt.NDArray[Any], second: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Per enterprise, its first-year value then its second-year value."""
    return np.column_stack((first, second)).ravel()


BAD_CHECK, BAD_DUPLICATE, BAD_REGION, BAD_INDUSTRY, BAD_REVENUE, BAD_REG_DATE = range(6)


def _generate_block(pools: _Pools, seed: int, block: int, n: int) -> dict[str, pa.Table]:
    """Every table's rows for enterprises block*BLOCK_ROWS .. +n, from the block's own random stream."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, block)))
    index = np.arange(block * BLOCK_ROWS, block * BLOCK_ROWS + n, dtype=np.int64)
    u = rng.random(n)
    bad = np.where(u < 6 * BAD_SHARE, (u / BAD_SHARE).astype(np.int64), -1)
    enterprises, b = _enterprises(pools, rng, index, bad)
    annual = _annual_reports(pools, rng, b)
    tables = {
        "enterprises": enterprises,
        "annual_reports": annual,
        "tax": _tax(pools, rng, b),
        "social_insurance": _social_insurance(pools, rng, b),
        "credit": _credit(rng, b),
        "certifications": _certifications(pools, rng, b),
        "bank_accounts": _bank_accounts(pools, rng, b),
        "payments": _payments(pools, rng, b),
    }
    # Drawn last and without randomness of its own, so the other tables are what they were before it.
    tables["stats_listing"] = _stats_listing(pools, b, annual)
    return {table: tables[table] for table in TABLES}


@dataclass(frozen=True)
class _Sizes:
    """Headcount and money (fen) of each enterprise, first year then assessment year."""

    employees: tuple[Ints, Ints]
    revenue: tuple[Ints, Ints]
    assets: tuple[Ints, Ints]
    rd_expense: tuple[Ints, Ints]


def _sizes(
    pools: _Pools, rng: np.random.Generator, profile: Ints, age_years: Floats, library: Bools
) -> _Sizes:
    """Lognormal sizes by industry profile, older firms somewhat bigger, revenue and assets following
    headcount; the first year is a step back along a growth path. A few firms are dormant (nobody, no
    revenue) and a few are anchor firms of a thousand staff or more."""
    n = profile.size
    pv = {k: v[profile] for k, v in pools.profile_values.items()}
    employees2 = np.rint(
        _lognormal(rng, pv["employees"] * (1 + age_years / 15) ** 0.5, pv["employees_sigma"], n)
    )
    employees2 = np.maximum(1, employees2).astype(np.int64)
    anchor = pools.profile_anchor[profile] & (rng.random(n) < ANCHOR_SHARE)
    employees2[anchor] = np.rint(_lognormal(rng, 1500.0, 0.5, int(anchor.sum()))).astype(np.int64)
    employees2[rng.random(n) < 0.03] = 0
    employees1 = np.rint(employees2 / np.exp(rng.normal(0.02, 0.12, n))).astype(np.int64)
    per_head = pv["revenue_per_head"] * np.where(anchor, 2.0, 1.0)
    revenue2 = employees2 * _lognormal(rng, per_head, pv["revenue_sigma"], n)
    # Firms in the library's other cities grow faster, so that some cross the 规上 bound into the
    # statistics list (新纳入规上) for the demo's award there.
    revenue1 = revenue2 / np.exp(rng.normal(np.where(library, 0.3, 0.04), np.where(library, 0.3, 0.2), n))
    assets_ratio = _lognormal(rng, pv["assets_ratio"], pv["assets_sigma"], n)
    assets2 = (revenue2 + 20_000 * employees2 + 50_000) * assets_ratio
    assets1 = assets2 / np.exp(rng.normal(0.03, 0.1, n))
    has_rd = (rng.random(n) < pv["rd_share"] * np.minimum(1.0, 0.4 + employees2 / 30)) & (revenue2 > 0)
    rd_ratio2 = np.minimum(0.15, _lognormal(rng, np.maximum(pv["rd_ratio"], 1e-4), 0.6, n))
    rd_ratio1 = np.minimum(0.15, rd_ratio2 * np.exp(rng.normal(0.0, 0.15, n)))
    return _Sizes(
        employees=(employees1, employees2),
        revenue=(_fen(revenue1), _fen(revenue2)),
        assets=(_fen(assets1), _fen(assets2)),
        rd_expense=(
            _fen(np.where(has_rd, revenue1 * rd_ratio1, 0.0)),
            _fen(np.where(has_rd, revenue2 * rd_ratio2, 0.0)),
        ),
    )


@dataclass(frozen=True)
class _Insurance:
    """Unemployment-insurance figures of each enterprise, first year then assessment year."""

    insured_start: tuple[Ints, Ints]
    insured_end: tuple[Ints, Ints]
    premium: tuple[Ints, Ints]  # fen
    graduates: tuple[Ints, Ints]


def _insurance(
    pools: _Pools, rng: np.random.Generator, reg_date: Ints, employees: tuple[Ints, Ints], tech: Bools
) -> _Insurance:
    """Insured staff (a share of employees; some micro firms insure nobody), year-on-year changes with
    layoff rates clustered near the 5.5% and 20% thresholds, premiums of 0.5-1% of payroll, graduate hires.
    The first year ends where the assessment year starts."""
    n = reg_date.size
    coverage = np.clip(rng.normal(0.85, 0.15, n), 0.3, 1.0)
    coverage[(employees[1] < 10) & (rng.random(n) < 0.12)] = 0.0
    start2 = np.where(reg_date <= pools.year_ends[0], np.rint(employees[0] * coverage), 0).astype(np.int64)
    path = rng.random(n)
    cut = np.select(
        [path < 0.55, path < 0.75, path < 0.87, path < 0.96],
        [
            -rng.uniform(0.0, 0.15, n),  # growing
            rng.uniform(0.0, 0.055, n),
            rng.uniform(0.04, 0.08, n),  # around 5.5%
            rng.uniform(0.12, 0.28, n),  # around 20%
        ],
        rng.uniform(0.28, 0.7, n),
    )
    hired = np.rint(employees[1] * coverage)
    end2 = np.where(start2 > 0, start2 - np.rint(start2 * cut), hired).astype(np.int64)
    end1 = start2
    first_day = _days(dt.date(pools.years[0], 1, 1))
    start1 = np.where(reg_date < first_day, np.rint(end1 / np.exp(rng.normal(0.03, 0.15, n))), 0).astype(
        np.int64
    )
    wage = np.maximum(48_000.0, _lognormal(rng, 62_000.0, 0.25, n))
    rate = rng.uniform(0.005, 0.01, n)
    graduate_rate = np.where(tech, 0.03, 0.012)
    return _Insurance(
        insured_start=(start1, start2),
        insured_end=(end1, end2),
        premium=(_fen((start1 + end1) / 2 * wage / 1.05 * rate), _fen((start2 + end2) / 2 * wage * rate)),
        graduates=(
            np.minimum(rng.poisson(graduate_rate * end1), end1).astype(np.int64),
            np.minimum(rng.poisson(graduate_rate * end2), end2).astype(np.int64),
        ),
    )


def _names(
    pools: _Pools, rng: np.random.Generator, county: Ints, industry: Ints, employees: Ints
) -> pa.Array:
    """City/city市/province/county prefix of the firm's own county (淮安, 淮安市, 江苏, 淮安市淮安区; 济南, ...)
    + trade name + industry stem + legal form (large firms more often 股份)."""
    n = county.size
    prefix = county * 4 + _pick(rng, np.array([0.38, 0.12, 0.12, 0.38]), n)
    trade = rng.integers(0, len(pools.trade_names), n)
    stem = pools.stem_start[industry] + (rng.random(n) * pools.stem_count[industry]).astype(np.int64)
    u = rng.random(n)
    by_shares = np.where(employees >= 300, 0.35, 0.03)
    suffix = np.where(u < by_shares, 2, np.where(u < by_shares + 0.10, 1, 0))
    return pc.binary_join_element_wise(
        _take(pools.prefixes, prefix),
        _take(pools.trade_names, trade),
        _take(pools.stems, stem),
        _take(pools.suffixes, suffix),
        "",
    )


def _registered_capital(rng: np.random.Generator, assets: Ints) -> Ints:
    """Fen; mostly the round figure nearest a quarter of the assets, give or take."""
    target = np.maximum(assets / 100, 1e5) * _lognormal(rng, 0.25, 0.8, assets.size)
    log_ladder = np.log(REG_CAPITAL_LADDER)
    ladder = REG_CAPITAL_LADDER[np.searchsorted((log_ladder[1:] + log_ladder[:-1]) / 2, np.log(target))]
    return _fen(np.where(rng.random(assets.size) < 0.1, np.rint(target / 10_000) * 10_000, ladder))


def _phones(rng: np.random.Generator, n: int) -> pa.Array:
    """Mobile numbers 1[35789]xxxxxxxxx; about 3% missing."""
    phone = np.empty((n, 11), dtype=np.uint8)
    phone[:, 0] = ord("1")
    second = _pick(rng, np.array([0.3, 0.2, 0.1, 0.25, 0.15]), n)
    phone[:, 1] = np.frombuffer(b"35789", dtype=np.uint8)[second]
    phone[:, 2:] = rng.integers(ord("0"), ord("9") + 1, (n, 9), dtype=np.uint8)
    return _ascii(phone, rng.random(n) >= 0.03)


@dataclass(frozen=True)
class _Block:
    """Per-enterprise arrays of one block that several tables share."""

    n: int
    uscc: pa.Array
    name: pa.Array
    county: Ints
    status: Ints
    profile: Ints
    tech: Bools
    reg_date: Ints
    sizes: _Sizes
    insurance: _Insurance
    industry: Ints  # position in INDUSTRIES
    bad: Ints  # -1 or the kind of deliberate fault
    linked: Bools  # rows of other tables exist (false for the duplicated registrations)


def _enterprises(pools: _Pools, rng: np.random.Generator, index: Ints, bad: Ints) -> tuple[pa.Table, _Block]:
    """The enterprises rows of a block, and what the other tables of the block need to know of them."""
    n = index.size
    county = _pick(rng, pools.county_p, n)
    # A duplicated registration repeats the code of the firm before it, in the same county.
    duplicate = bad == BAD_DUPLICATE
    source = np.where(duplicate, np.where(np.arange(n) > 0, np.arange(n) - 1, 1 % max(n, 1)), np.arange(n))
    county = county[source]
    industry = _pick(rng, pools.industry_p, n)
    profile = pools.industry_profile[industry]
    tech = pools.profile_tech[profile]
    status = _pick(rng, pools.status_p, n)
    # Young firms dominate; the oldest registrations go back to the early 1990s.
    age_days = np.minimum(rng.exponential(8 * 365.25, n) + 20, 34 * 365.25).astype(np.int64)
    reg_date = pools.taken_at - age_days
    sizes = _sizes(pools, rng, profile, age_days / 365.25, pools.county_library[county])
    insurance = _insurance(pools, rng, reg_date, sizes.employees, tech)
    name = _names(pools, rng, county, industry, sizes.employees[1])

    uscc = _usccs(index, county, bad == BAD_CHECK, rng, pools).take(pa.array(source))
    region = np.where(bad == BAD_REGION, len(COUNTIES), county)
    industry_column = np.where(bad == BAD_INDUSTRY, len(INDUSTRIES), industry)
    reg_date_column = np.where(bad == BAD_REG_DATE, pools.taken_at + rng.integers(1, 366, n), reg_date)
    table = pa.Table.from_arrays(
        [
            uscc,
            name,
            _date(reg_date_column),
            _take(pools.region_codes, region),
            _take(pools.industry_codes, industry_column),
            _take(pools.statuses, status),
            _money(_registered_capital(rng, sizes.assets[1])),
            _phones(rng, n),
        ],
        schema=SCHEMAS["enterprises"],
    )
    block = _Block(
        n=n,
        uscc=uscc,
        name=name,
        county=county,
        status=status,
        profile=profile,
        tech=tech,
        reg_date=reg_date,
        sizes=sizes,
        insurance=insurance,
        industry=industry,
        bad=bad,
        linked=~duplicate,
    )
    return table, block


_STATUS_INDEX = {s: i for i, s in enumerate(STATUS_WEIGHTS)}


def _yearly_rows(pools: _Pools, rng: np.random.Generator, b: _Block, missing: float, gone: float) -> Bools:
    """Which (enterprise, year) rows a yearly table has, interleaved per enterprise: the firm existed that
    year, is not a duplicate registration, and the department has the row (deregistered firms often not)."""
    closed = np.isin(b.status, [_STATUS_INDEX["注销"], _STATUS_INDEX["吊销"]])
    p_missing = np.where(closed, gone, missing)
    rows = []
    for year_end in pools.year_ends:
        rows.append((b.reg_date <= year_end) & b.linked & (rng.random(b.n) >= p_missing))
    return _interleave(rows[0], rows[1])


def _some_null(rng: np.random.Generator, n: int, share: float) -> Bools:
    """A validity mask with about `share` of the values missing."""
    return rng.random(n) >= share


def _yearly_table(table: str, pools: _Pools, b: _Block, rows: Bools, columns: Sequence[pa.Array]) -> pa.Table:
    """A yearly table from the chosen interleaved rows: uscc and year, then the given value columns."""
    who = np.repeat(np.arange(b.n), 2)[rows]
    years = np.tile(np.array(pools.years, dtype=np.int32), b.n)[rows]
    return pa.Table.from_arrays(
        [b.uscc.take(pa.array(who)), pa.array(years, type=pa.int32()), *columns], schema=SCHEMAS[table]
    )


def _annual_reports(pools: _Pools, rng: np.random.Generator, b: _Block) -> pa.Table:
    """企业年报: employees, revenue, total assets; closed firms mostly file none."""
    rows = _yearly_rows(pools, rng, b, missing=0.05, gone=0.85)
    # A negative-revenue fault needs a second-year row to show in.
    negative = _interleave(
        np.zeros(b.n, dtype=bool), (b.bad == BAD_REVENUE) & (b.reg_date <= pools.year_ends[1])
    )
    rows |= negative
    revenue = _interleave(*b.sizes.revenue)
    revenue = np.where(negative, -np.maximum(np.abs(revenue), 100_000_00), revenue)[rows]
    k = int(rows.sum())
    return _yearly_table(
        "annual_reports",
        pools,
        b,
        rows,
        [
            _int(_interleave(*b.sizes.employees)[rows], _some_null(rng, k, 0.01)),
            _money(revenue, _some_null(rng, k, 0.02) | negative[rows]),
            _money(_interleave(*b.sizes.assets)[rows], _some_null(rng, k, 0.02)),
        ],
    )


def _tax(pools: _Pools, rng: np.random.Generator, b: _Block) -> pa.Table:
    """税务: tax paid (about 3% of revenue, nothing for some), R&D expense, 纳税信用等级 (M for new firms)."""
    rows = _yearly_rows(pools, rng, b, missing=0.03, gone=0.5)
    revenue = _interleave(*b.sizes.revenue)
    tax_rate = np.clip(_lognormal(rng, 0.03, 0.5, 2 * b.n), 0.002, 0.15)
    tax_rate[rng.random(2 * b.n) < 0.05] = 0.0
    tax_paid = np.rint(revenue * tax_rate).astype(np.int64)
    age_at_year_end = _interleave(*(np.asarray(end - b.reg_date) for end in pools.year_ends))
    new = age_at_year_end < 2 * 365
    u = rng.random(2 * b.n)
    rating = np.where(
        new,
        np.searchsorted(np.cumsum(RATING_WEIGHTS_NEW), u, side="right"),
        np.searchsorted(np.cumsum(RATING_WEIGHTS_ESTABLISHED), u, side="right"),
    )
    rating = np.minimum(rating, len(RATINGS) - 1)
    k = int(rows.sum())
    return _yearly_table(
        "tax",
        pools,
        b,
        rows,
        [
            _money(tax_paid[rows], _some_null(rng, k, 0.01)),
            _money(_interleave(*b.sizes.rd_expense)[rows], _some_null(rng, k, 0.03)),
            _take(pools.ratings, rating[rows], _some_null(rng, k, 0.02)),
        ],
    )


def _social_insurance(pools: _Pools, rng: np.random.Generator, b: _Block) -> pa.Table:
    """人社: insured staff at the start and end of the year, UI premium paid, arrears (2%), graduate hires."""
    rows = _yearly_rows(pools, rng, b, missing=0.04, gone=0.5)
    k = int(rows.sum())
    arrears = rng.random(k) < 0.02
    return _yearly_table(
        "social_insurance",
        pools,
        b,
        rows,
        [
            _int(_interleave(*b.insurance.insured_start)[rows], _some_null(rng, k, 0.01)),
            _int(_interleave(*b.insurance.insured_end)[rows], _some_null(rng, k, 0.01)),
            _money(_interleave(*b.insurance.premium)[rows], _some_null(rng, k, 0.02)),
            _bool(arrears, _some_null(rng, k, 0.01)),
            _int(_interleave(*b.insurance.graduates)[rows], _some_null(rng, k, 0.02)),
        ],
    )


def _credit(rng: np.random.Generator, b: _Block) -> pa.Table:
    """信用: about 1% 严重失信 and 3% 经营异常, far more among revoked firms; 2% of firms have no row."""
    rows = b.linked & (rng.random(b.n) >= 0.02)
    revoked = b.status == _STATUS_INDEX["吊销"]
    dishonest = rng.random(b.n) < np.where(revoked, 0.10, 0.008)
    abnormal = rng.random(b.n) < np.where(revoked, 0.50, 0.02)
    k = int(rows.sum())
    return pa.Table.from_arrays(
        [
            b.uscc.filter(pa.array(rows)),
            _bool(dishonest[rows], _some_null(rng, k, 0.005)),
            _bool(abnormal[rows], _some_null(rng, k, 0.005)),
        ],
        schema=SCHEMAS["credit"],
    )


def _certifications(pools: _Pools, rng: np.random.Generator, b: _Block) -> pa.Table:
    """高新技术 (3 years, often renewed), 科技型中小 (1 year), 专精特新 (3 years) and 小巨人 certificates."""
    n, taken = b.n, pools.taken_at
    employees, revenue, assets = b.sizes.employees[1], b.sizes.revenue[1], b.sizes.assets[1]
    alive = b.linked & (b.status != _STATUS_INDEX["注销"])
    manufacturing = b.profile == list(PROFILES).index("manufacturing")
    software = b.profile == list(PROFILES).index("software")
    who: list[Ints] = []
    kind: list[Ints] = []
    start: list[Ints] = []
    end: list[Ints] = []
    end_valid: list[Bools] = []

    def add(holders: Ints, type_index: int, cert: Ints, years: int, no_expiry_share: float = 0.0) -> Ints:
        """Certificates of one type for the holders (enterprise positions); returns their expiry days."""
        expiry = _add_years(cert, years) - 1
        who.append(holders)
        kind.append(np.full(holders.size, type_index, dtype=np.int64))
        start.append(cert)
        end.append(expiry)
        end_valid.append(rng.random(holders.size) >= no_expiry_share)
        return expiry

    # Firms in the library's other cities hold certificates more often, so that the demo's awards for
    # first and new recognition there (长沙, 福建) have enterprises to reach.
    boost = np.where(pools.county_library[b.county], 4.0, 1.0)
    p_high_tech = boost * np.where(
        b.tech & (employees >= 10), 0.10, np.where(b.tech & (employees >= 3), 0.02, 0.001)
    )
    high_tech = np.flatnonzero(alive & (revenue > 0) & (rng.random(n) < p_high_tech))
    expiry = add(high_tech, 0, taken - rng.integers(10, 6 * 365, high_tech.size), 3)
    renewed_cert = expiry + rng.integers(1, 90, high_tech.size)
    renewed = (expiry < taken) & (renewed_cert <= taken) & (rng.random(high_tech.size) < 0.5)
    add(high_tech[renewed], 0, renewed_cert[renewed], 3)

    srdi = np.flatnonzero(
        alive & (manufacturing | software) & (employees >= 10) & (rng.random(n) < 0.05 * boost)
    )
    srdi_cert = taken - rng.integers(10, 5 * 365, srdi.size)
    add(srdi, 1, srdi_cert, 3, no_expiry_share=0.15)
    giant_cert = srdi_cert + rng.integers(180, 900, srdi.size)
    p_giant = np.where(pools.county_library[b.county[srdi]], 0.6, 0.15)
    giant = (employees[srdi] >= 50) & (giant_cert <= taken) & (rng.random(srdi.size) < p_giant)
    add(srdi[giant], 2, giant_cert[giant], 3)

    small_enough = (employees <= 500) & (revenue <= 2e8 * 100) & (assets <= 2e8 * 100)
    tech_sme = np.flatnonzero(alive & b.tech & small_enough & (employees >= 3) & (rng.random(n) < 0.15))
    add(tech_sme, 3, taken - rng.integers(10, 2 * 365, tech_sme.size), 1, no_expiry_share=0.10)

    all_who = np.concatenate(who)
    order = np.argsort(all_who, kind="stable")
    return pa.Table.from_arrays(
        [
            b.uscc.take(pa.array(all_who[order])),
            _take(pools.cert_types, np.concatenate(kind)[order]),
            _date(np.concatenate(start)[order]),
            _date(np.concatenate(end)[order], np.concatenate(end_valid)[order]),
        ],
        schema=SCHEMAS["certifications"],
    )


def _stats_listing(pools: _Pools, b: _Block, annual: pa.Table) -> pa.Table:
    """统计局 规上/限上 名录: per annual report with a revenue, firms of an industry whose bound is set by
    revenue, listed (above_scale true) when the revenue reaches the bound, false below it. A firm whose
    revenue crosses the bound from the first year to the second is newly listed (新纳入规上)."""
    position = pc.index_in(annual["uscc"], value_set=b.uscc).to_numpy(zero_copy_only=False)
    revenue = annual["revenue"]
    has_revenue = pc.is_valid(revenue).to_numpy(zero_copy_only=False)
    bound = pools.scale_bound[b.industry[position]]
    rows = has_revenue & (bound >= 0)
    # Exact: every revenue here is whole fen far below 2^53.
    yuan = pc.cast(revenue, pa.float64()).to_numpy(zero_copy_only=False)
    fen = np.rint(np.nan_to_num(yuan) * 100).astype(np.int64)
    mask = pa.array(rows)
    return pa.Table.from_arrays(
        [annual["uscc"].filter(mask), annual["year"].filter(mask), pa.array(fen[rows] >= bound[rows])],
        schema=SCHEMAS["stats_listing"],
    )


def _bank_accounts(pools: _Pools, rng: np.random.Generator, b: _Block) -> pa.Table:
    """对公账户: one per firm at a bank branch mostly in its own county, held in its name; 3% have none."""
    rows = b.linked & (rng.random(b.n) >= 0.03)
    k = int(rows.sum())
    bank = _pick(rng, pools.bank_p, k)
    elsewhere = rng.random(k) < 0.15
    county = np.where(elsewhere, _pick(rng, pools.county_p, k), b.county[rows])
    main_office = (rng.random(k) < 0.2).astype(np.int64)
    account = np.empty((k, 19), dtype=np.uint8)
    account[:, :4] = pools.bank_prefix_digits[bank]
    account[:, 4:] = rng.integers(ord("0"), ord("9") + 1, (k, 15), dtype=np.uint8)
    mask = pa.array(rows)
    return pa.Table.from_arrays(
        [
            b.uscc.filter(mask),
            _take(pools.bank_names, (bank * len(COUNTIES) + county) * 2 + main_office),
            _ascii(account),
            b.name.filter(mask),
        ],
        schema=SCHEMAS["bank_accounts"],
    )


def _payments(pools: _Pools, rng: np.random.Generator, b: _Block) -> pa.Table:
    """Payouts made earlier outside this system, so that matching can drop what was already paid."""
    share = min(1.0, PAYMENTS_TARGET / pools.enterprises)
    active = np.isin(b.status, [_STATUS_INDEX["存续"], _STATUS_INDEX["在业"]])
    chosen = b.linked & (b.bad < 0) & active & (rng.random(b.n) < share)
    kind = _pick(rng, pools.payout_p, b.n)
    premium, graduates, rd = b.insurance.premium[1], b.insurance.graduates[1], b.sizes.rd_expense[1]
    # Fall back to the refund when the drawn kind has nothing to pay on.
    kind = np.where((kind == 2) & (rd <= 0), 0, kind)
    kind = np.where((kind == 1) & (graduates <= 0), 0, kind)
    chosen &= (kind != 0) | ((premium > 0) & (b.sizes.employees[1] < 1000))  # the 60% refund is for SMEs
    amount = np.select(
        [kind == 0, kind == 1],
        [(premium * 6 + 5) // 10, graduates * 150_000],
        np.minimum((rd + 5) // 10, 1_000_000_00),
    )
    period = pools.payout_year[kind] - ((kind == 0) & (rng.random(b.n) < 0.2))
    return pa.Table.from_arrays(
        [
            b.uscc.filter(pa.array(chosen)),
            _take(pools.payout_policy, kind[chosen]),
            _take(pools.payout_item, kind[chosen]),
            pa.array(period[chosen].astype(str)),
            _money(amount[chosen].astype(np.int64)),
        ],
        schema=SCHEMAS["payments"],
    )


# ---------------------------------------------------------------------------------------------------------
# The snapshot


def _chunks(enterprises: int, chunk_size: int) -> Iterator[list[tuple[int, int]]]:
    """Chunks as lists of (block index, enterprises in the block); a chunk is a whole number of blocks."""
    blocks_per_chunk = max(1, math.ceil(chunk_size / BLOCK_ROWS))
    blocks = [
        (i, min(BLOCK_ROWS, enterprises - i * BLOCK_ROWS)) for i in range(math.ceil(enterprises / BLOCK_ROWS))
    ]
    for first in range(0, len(blocks), blocks_per_chunk):
        yield blocks[first : first + blocks_per_chunk]


def _wait(pending: tuple[Future[None], int], progress: Callable[[int], None] | None) -> None:
    """Wait for a chunk's write (raising what it raised), then report its enterprises."""
    future, enterprises = pending
    future.result()
    if progress is not None:
        progress(enterprises)


def _snapshot_yaml(out: Path, taken_at: dt.date, seed: int, enterprises: int, rows: dict[str, int]) -> None:
    departments = {**DEPARTMENTS, "payments": "财政局（既往拨付）"}
    document = {
        "taken_at": taken_at,
        "sources": {
            table: {"department": departments[table], "file": f"{table}.parquet", "rows": rows[table]}
            for table in TABLES
        },
        "generator": {
            "name": "zhida snapshot generate",
            "synthetic": True,
            "seed": seed,
            "enterprises": enterprises,
            "city": "淮安市 (320800)",
            "years": [taken_at.year - 2, taken_at.year - 1],
        },
    }
    (out / "snapshot.yaml").write_text(
        yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def generate_snapshot(
    out: Path,
    enterprises: int,
    seed: int = 0,
    *,
    taken_at: dt.date = DEFAULT_TAKEN_AT,
    chunk_size: int = 500_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write a synthetic snapshot of `enterprises` firms into `out` and return the rows written per table.

    The yearly tables cover the two years before `taken_at` (2023 and 2024 by default; the second is the
    assessment year policies read). `chunk_size` enterprises (rounded up to whole blocks of BLOCK_ROWS)
    are held in memory at a time and written as one row group per table; `progress` is called after each
    chunk with the number of enterprises it held, once they are written. The Parquet files and
    `snapshot.yaml` of an earlier snapshot in `out` are replaced; `<table>.csv` files there are refused.
    """
    if enterprises < 1:
        raise SnapshotError(f"企业数必须为正整数，收到 {enterprises}")
    if seed < 0:
        raise SnapshotError(f"随机种子必须为非负整数，收到 {seed}")
    if chunk_size < 1:
        raise SnapshotError(f"分块大小必须为正整数，收到 {chunk_size}")
    stale = sorted(f"{table}.csv" for table in TABLES if (out / f"{table}.csv").exists())
    if stale:
        # A loader would find both files of a table; refuse rather than delete someone's data.
        raise SnapshotError(
            f"输出目录中已有 CSV 表 {', '.join(stale)}，请换一个目录或先移走这些文件", file=out
        )
    out.mkdir(parents=True, exist_ok=True)
    pools = _build_pools(seed, enterprises, taken_at)
    rows = dict.fromkeys(TABLES, 0)
    writers = {
        table: pq.ParquetWriter(
            out / f"{table}.parquet",
            schema,
            compression="zstd",
            use_dictionary=[c for c in schema.names if c in _DICTIONARY_COLUMNS],
        )
        for table, schema in SCHEMAS.items()
    }

    def write(tables: dict[str, pa.Table]) -> None:
        for table, data in tables.items():
            if data.num_rows:
                writers[table].write_table(data, row_group_size=data.num_rows)
                rows[table] += data.num_rows

    try:
        # One thread writes chunk k while this one generates chunk k+1; at most two chunks are in memory.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhida-parquet") as writer_thread:
            pending: tuple[Future[None], int] | None = None
            for chunk in _chunks(enterprises, chunk_size):
                parts = [_generate_block(pools, seed, block, n) for block, n in chunk]
                tables = {table: pa.concat_tables([part[table] for part in parts]) for table in TABLES}
                del parts
                if pending is not None:
                    _wait(pending, progress)
                pending = (writer_thread.submit(write, tables), sum(n for _, n in chunk))
                del tables
            if pending is not None:
                _wait(pending, progress)
    finally:
        for writer in writers.values():
            writer.close()
    _snapshot_yaml(out, taken_at, seed, enterprises, rows)
    return rows
