"""Code lists: administrative divisions (GB/T 2260) and industries (GB/T 4754-2017), read from data/codes/.

File formats (UTF-8 CSV with header), so the data office and the tests can read them too:
- `data/codes/regions.csv`: code (6 digits), name, level (province | prefecture | county), parent (code or empty)
- `data/codes/industries.csv`: code (e.g. `C`, `C39`, `C391`, `C3911`), name, level
  (section | division | group | class), section (letter)

Where the lists come from and how complete they are is told in `data/codes/README.md`.

When a code counts as known:
- A region code is known when it is in the list. A county-level code (last two digits not `00`) of a
  province none of whose counties the list ships is known when its prefecture (first four digits + `00`)
  is in the list: such a list vouches for the prefecture only. The shipped list has every county of
  mainland China, so this fallback only matters for a smaller list.
- An industry code is a section letter followed by 0, 2, 3 or 4 digits (`C`, `C39`, `C391`, `C3911`). It
  is known when its longest prefix in the list is the code itself, or is an entry with nothing below it
  in the list. So the section and the 2-digit division must exist (`C39` is in section C, `A39` is not
  listed), and a group or class must be listed exactly wherever the list goes down to that level under
  its parent. The shipped list stops at divisions, so any group or class under a known division is
  accepted.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
from sqlglot import exp

import rules
from rules.errors import ZhidaError

REGION_LEVELS = ("province", "prefecture", "county")
"""Region levels from the top down; a region's parent is one or two levels above it."""

INDUSTRY_LEVELS = ("section", "division", "group", "class")
"""Industry levels from the top down; their codes have 0, 2, 3 and 4 digits after the section letter."""

_INDUSTRY_DIGITS = {"section": 0, "division": 2, "group": 3, "class": 4}
_REGION_CODE = re.compile(r"[0-9]{6}")
_INDUSTRY_CODE = re.compile(r"[A-Z](?:[0-9]{2,4})?")
_REGION_HEADER = ["code", "name", "level", "parent"]
_INDUSTRY_HEADER = ["code", "name", "level", "section"]


@dataclass(frozen=True)
class Region:
    """One administrative division: its GB/T 2260 code, Chinese name, level and the code of the unit above."""

    code: str
    name: str
    level: str
    parent: str | None


@dataclass(frozen=True)
class Industry:
    """One GB/T 4754-2017 entry: code with its section letter (`C39`), Chinese name, level, section letter."""

    code: str
    name: str
    level: str
    section: str


@dataclass(frozen=True)
class RegionList:
    """A region code list with the lookups the matcher and the snapshot loader need."""

    regions: dict[str, Region]

    @cached_property
    def provinces_with_counties(self) -> frozenset[str]:
        """The two-digit province prefixes of which the list ships county-level units."""
        return frozenset(r.code[:2] for r in self.regions.values() if r.level == "county")

    def is_known(self, code: str) -> bool:
        """Whether `code` is in the list, or is a county under a listed prefecture of a province without counties."""
        if code in self.regions:
            return True
        if (
            not _REGION_CODE.fullmatch(code)
            or code.endswith("00")
            or code[:2] in self.provinces_with_counties
        ):
            return False
        prefecture = self.regions.get(code[:4] + "00")
        return prefecture is not None and prefecture.level == "prefecture"

    def name(self, code: str) -> str | None:
        """The Chinese name of a listed region; None for a code not in the list."""
        region = self.regions.get(code)
        return region.name if region is not None else None


@dataclass(frozen=True)
class IndustryList:
    """An industry code list with the lookups the matcher and the snapshot loader need."""

    industries: dict[str, Industry]

    @cached_property
    def leaves(self) -> frozenset[str]:
        """Codes with nothing below them in the list: any deeper code under a leaf is accepted."""
        parents = {_industry_parent(code) for code in self.industries}
        return frozenset(code for code in self.industries if code not in parents)

    def is_known(self, code: str) -> bool:
        """Whether `code` is well formed and every prefix of it that the list goes down to is listed."""
        if not _INDUSTRY_CODE.fullmatch(code):
            return False
        # The letter is part of every prefix, so a listed division is in the code's section by construction.
        prefix = next((p for p in _industry_prefixes(code) if p in self.industries), None)
        return prefix is not None and (prefix == code or prefix in self.leaves)

    def section(self, code: str) -> str | None:
        """The section letter of a known code; None for an unknown one."""
        return code[0] if self.is_known(code) else None

    def name(self, code: str) -> str | None:
        """The name of the most precise listed entry covering a known code (`C3911` -> the C39 name)."""
        if not self.is_known(code):
            return None
        return next(self.industries[p].name for p in _industry_prefixes(code) if p in self.industries)


def _industry_prefixes(code: str) -> list[str]:
    """The codes a well-formed industry code can sit under, itself first: C3911, C391, C39, C."""
    return [code[:n] for n in (5, 4, 3, 1) if n <= len(code)]


def _industry_parent(code: str) -> str | None:
    """The code one level up: C3911 -> C391 -> C39 -> C -> None."""
    if len(code) == 1:
        return None
    return code[:1] if len(code) == 3 else code[:-1]


def codes_dir() -> Path:
    """The folder holding the shipped code lists."""
    return rules.DATA_DIR / "codes"


def _read_rows(path: Path, header: list[str]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a code-list CSV with their line numbers; refuses a file with another header."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != header:
            raise ZhidaError(f"{path}: header must be {','.join(header)}, found {reader.fieldnames}")
        return [(reader.line_num, row) for row in reader]


def read_regions(path: Path) -> RegionList:
    """Read and check a regions CSV: codes unique, levels known, each parent listed and above its child."""
    regions: dict[str, Region] = {}
    for line, row in _read_rows(path, _REGION_HEADER):
        code, name, level, parent = (row[k] for k in _REGION_HEADER)
        where = f"{path}:{line}"
        if not _REGION_CODE.fullmatch(code) or code in regions:
            raise ZhidaError(f"{where}: region code {code!r} is not six digits or is listed twice")
        if not name or level not in REGION_LEVELS:
            raise ZhidaError(f"{where}: region {code} needs a name and a level among {REGION_LEVELS}")
        if (level == "province") != (parent == ""):
            raise ZhidaError(f"{where}: provinces and only provinces have no parent (region {code})")
        regions[code] = Region(code, name, level, parent or None)
    for region in regions.values():
        parent_region = regions.get(region.parent) if region.parent else None
        if region.parent and (
            parent_region is None
            or REGION_LEVELS.index(parent_region.level) >= REGION_LEVELS.index(region.level)
            or region.code[:2] != region.parent[:2]
        ):
            raise ZhidaError(
                f"{path}: region {region.code} has parent {region.parent}, not a listed unit above it"
            )
    return RegionList(regions)


def read_industries(path: Path) -> IndustryList:
    """Read and check an industries CSV: each code's shape fits its level and letter, each parent is listed."""
    industries: dict[str, Industry] = {}
    for line, row in _read_rows(path, _INDUSTRY_HEADER):
        code, name, level, section = (row[k] for k in _INDUSTRY_HEADER)
        where = f"{path}:{line}"
        if level not in INDUSTRY_LEVELS or code in industries or not name:
            raise ZhidaError(
                f"{where}: industry {code!r} needs a name, a level among {INDUSTRY_LEVELS} and no twin"
            )
        digits = code[1:]
        if (
            code[:1] != section
            or len(digits) != _INDUSTRY_DIGITS[level]
            or not _INDUSTRY_CODE.fullmatch(code)
        ):
            raise ZhidaError(
                f"{where}: industry code {code!r} does not fit level {level} in section {section!r}"
            )
        industries[code] = Industry(code, name, level, section)
    for code in industries:
        parent = _industry_parent(code)
        if parent is not None and parent not in industries:
            raise ZhidaError(f"{path}: industry {code} is listed without {parent}")
    return IndustryList(industries)


@cache
def region_list() -> RegionList:
    """The shipped region list, read once."""
    return read_regions(codes_dir() / "regions.csv")


@cache
def industry_list() -> IndustryList:
    """The shipped industry list, read once."""
    return read_industries(codes_dir() / "industries.csv")


def regions() -> dict[str, Region]:
    """Every shipped region by code (read once; do not modify)."""
    return region_list().regions


def industries() -> dict[str, Industry]:
    """Every shipped industry entry by code (read once; do not modify)."""
    return industry_list().industries


def is_known_region(code: str) -> bool:
    """Whether a region code is in the shipped list (see the module docstring for the county fallback)."""
    return region_list().is_known(code)


def is_known_industry(code: str) -> bool:
    """Whether an industry code like `C3911` fits the shipped list (see the module docstring)."""
    return industry_list().is_known(code)


def region_name(code: str) -> str | None:
    """The Chinese name of a listed region code; None when the code is not in the list."""
    return region_list().name(code)


def industry_name(code: str) -> str | None:
    """The name of the most precise listed entry covering a known industry code; None when unknown."""
    return industry_list().name(code)


def industry_section(code: str) -> str | None:
    """The section letter (门类) of a known industry code; None when unknown."""
    return industry_list().section(code)


def known_region_codes() -> list[str]:
    """Every listed region code, sorted, for joins in SQL (the county fallback adds none with the shipped list)."""
    return sorted(region_list().regions)


def known_industry_codes() -> list[str]:
    """Every listed industry code, sorted. In SQL a code is known when it is one of these, or is well
    formed (`^[A-Z]([0-9]{2,4})?$`), has a prefix in `industry_leaf_codes()` and that prefix's letter."""
    return sorted(industry_list().industries)


def industry_leaf_codes() -> list[str]:
    """Listed industry codes with nothing below them in the list (the divisions, in the shipped list), sorted."""
    return sorted(industry_list().leaves)


# --- unified social credit codes (GB 32100-2015) ---------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100-2015 characters: digits and capitals without I, O, S, V, Z; a character's value is its index."""
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
"""GB 32100 weights 3^i mod 31 of the first 17 characters."""


# --- the checks as SQL (sqlglot trees, rendered by every engine) ------------------------------------------


def _strings(values: Iterable[str]) -> list[exp.Expr]:
    return [exp.Literal.string(v) for v in values]


def _substr(code: exp.Expr, start: int, length: int) -> exp.Expr:
    return exp.Substring(this=code.copy(), start=exp.Literal.number(start), length=exp.Literal.number(length))


def _all(parts: Sequence[exp.Expr]) -> exp.Expr:
    return functools.reduce(lambda a, b: exp.And(this=a, expression=b), parts)


def _any(parts: Sequence[exp.Expr]) -> exp.Expr:
    return functools.reduce(lambda a, b: exp.Or(this=a, expression=b), parts)


_USCC_FORM = re.compile(f"[0-9]{{8}}[{USCC_ALPHABET}]{{10}}")


def is_uscc(code: str) -> bool:
    """GB 32100 in Python, the same definition `uscc_valid` renders as SQL (canonical form: 8 digits,
    then 10 characters of the alphabet, the last the check character of the first 17)."""
    if not _USCC_FORM.fullmatch(code):
        return False
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


_USCC_VALUE = np.full(256, 255, dtype=np.uint8)
for _value, _char in enumerate(USCC_ALPHABET):
    _USCC_VALUE[ord(_char)] = _value
_USCC_CHARS = np.frombuffer(USCC_ALPHABET.encode("ascii"), dtype=np.uint8)
_USCC_WEIGHTS = np.array(USCC_WEIGHTS, dtype=np.int32)


def uscc_valid_array(codes: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`is_uscc` over a whole column at once (numpy over the UTF-8 bytes): the same definition as
    `uscc_valid`, for an engine that runs it as a vectorised function; NULL stays NULL.

    A code of 18 bytes is 18 ASCII characters exactly when each byte is in the alphabet, so the byte
    length decides the shape and multi-byte text is refused like any other character outside it."""
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    text = codes.cast(pa.large_string())
    n = len(text)
    _, offsets_buffer, data_buffer = text.buffers()
    assert offsets_buffer is not None
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=n + 1, offset=text.offset * 8)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    rows = np.flatnonzero(np.diff(offsets) == 18)
    valid = np.zeros(n, dtype=np.bool_)
    if len(rows):
        if len(rows) == n and offsets[-1] - offsets[0] == 18 * n:  # the usual column: every code 18 bytes
            chars = data[offsets[0] : offsets[-1]].reshape(n, 18)
        else:
            chars = data[offsets[rows][:, None] + np.arange(18)]
        values = _USCC_VALUE[chars]
        ok = (values[:, :8] < 10).all(axis=1) & (values[:, 8:] < 31).all(axis=1)
        total = values[:, :17].astype(np.int32) @ _USCC_WEIGHTS
        ok &= _USCC_CHARS[(31 - total % 31) % 31] == chars[:, 17]
        valid[rows] = ok
    nulls = None if text.null_count == 0 else text.is_null().to_numpy(zero_copy_only=False)
    return pa.array(valid, type=pa.bool_(), mask=nulls)


def uscc_valid(code: exp.Expr) -> exp.Expr:
    """GB 32100 as SQL, on codes written in canonical form: 8 digits, then 10 characters of the alphabet
    (upper case), the last the check character of the first 17 (weights `USCC_WEIGHTS`, modulo 31)."""
    alphabet = exp.Literal.string(USCC_ALPHABET)
    terms: list[exp.Expr] = [
        exp.Mul(
            this=exp.Paren(
                this=exp.Sub(
                    this=exp.StrPosition(this=alphabet.copy(), substr=_substr(code, i + 1, 1)),
                    expression=exp.Literal.number(1),
                )
            ),
            expression=exp.Literal.number(w),
        )
        for i, w in enumerate(USCC_WEIGHTS)
    ]
    total = functools.reduce(lambda a, b: exp.Add(this=a, expression=b), terms)
    thirty_one = exp.Literal.number(31)
    check = exp.Mod(
        this=exp.Paren(
            this=exp.Sub(
                this=thirty_one, expression=exp.Mod(this=exp.Paren(this=total), expression=thirty_one.copy())
            )
        ),
        expression=thirty_one.copy(),
    )
    expected = exp.Substring(
        this=alphabet.copy(),
        start=exp.Add(this=check, expression=exp.Literal.number(1)),
        length=exp.Literal.number(1),
    )
    return _all(
        [
            exp.RegexpLike(
                this=code.copy(), expression=exp.Literal.string(f"^[0-9]{{8}}[{USCC_ALPHABET}]{{10}}\\z")
            ),
            exp.EQ(this=_substr(code, 18, 1), expression=expected),
        ]
    )


def region_known(code: exp.Expr) -> exp.Expr:
    """`RegionList.is_known` as SQL: listed, or a county under a listed prefecture of a province of which
    the list ships no counties."""
    listed: exp.Expr = code.copy().isin(*_strings(known_region_codes()))
    shipped = region_list()
    fallback = sorted(
        r.code
        for r in shipped.regions.values()
        if r.level == "prefecture" and r.code[:2] not in shipped.provinces_with_counties
    )
    if not fallback:
        return listed
    county = _all(
        [
            exp.RegexpLike(this=code.copy(), expression=exp.Literal.string("^[0-9]{6}\\z")),
            exp.NEQ(this=_substr(code, 5, 2), expression=exp.Literal.string("00")),
            exp.func("CONCAT", _substr(code, 1, 4), exp.Literal.string("00")).isin(*_strings(fallback)),
        ]
    )
    return exp.Or(this=listed, expression=exp.Paren(this=county))


def industry_known(code: exp.Expr) -> exp.Expr:
    """`IndustryList.is_known` as SQL: well formed, and listed or under a listed leaf."""
    leaves = _strings(industry_leaf_codes())
    return _all(
        [
            exp.RegexpLike(this=code.copy(), expression=exp.Literal.string("^[A-Z]([0-9]{2,4})?\\z")),
            exp.Paren(
                this=_any(
                    [
                        code.copy().isin(*_strings(known_industry_codes())),
                        *(_substr(code, 1, n).isin(*[x.copy() for x in leaves]) for n in (1, 3, 4)),
                    ]
                )
            ),
        ]
    )
