"""A bad policy file is refused as a whole, with every problem listed: file:line, id path, message, hint.

Each file in `broken/` is a small realistic policy with one deliberate mistake (a few have two). Its
header says what is expected, exactly:

    # expect: LINE | WHERE | MESSAGE | HINT      (one line per problem, in the order they are reported)
    # fix: WRONG => RIGHT                        (undoing the mistake must give a valid policy)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.commands import rules as rules_cmd
from rules.errors import PolicyError, Problem, display_path
from rules.ruleset import load_ruleset
from rules.validate import MAX_CONDITIONS, load_policy, parse_policy_text

BROKEN = Path(__file__).parent / "broken"
FILES = sorted(BROKEN.glob("*.yaml"))


@dataclass(frozen=True)
class Header:
    """What a broken file's header says: the problems it must produce and how to undo its mistake."""

    expected: list[tuple[int, str, str, str | None]]
    fixes: list[tuple[str, str]]
    body: str


def read_header(path: Path) -> Header:
    text = path.read_text(encoding="utf-8")
    expected: list[tuple[int, str, str, str | None]] = []
    fixes: list[tuple[str, str]] = []
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        line = lines[n].rstrip("\n")
        if line.startswith("# expect: "):
            parts = line.removeprefix("# expect: ").split(" | ", 3)
            hint = parts[3] if len(parts) == 4 else None
            expected.append((int(parts[0]), parts[1], parts[2], hint))
        elif line.startswith("# fix: "):
            wrong, right = line.removeprefix("# fix: ").split(" => ")
            fixes.append((wrong.replace("\\n", "\n"), right.replace("\\n", "\n")))
        n += 1
    return Header(expected, fixes, "".join(lines[n:]))


def problems_of(load: Callable[[], object]) -> list[Problem]:
    with pytest.raises(PolicyError) as caught:
        load()
    return caught.value.problems


def test_the_corpus_is_large_enough() -> None:
    assert len(FILES) >= 25
    assert all(read_header(f).expected for f in FILES), "every broken file says what it expects"
    assert sum(len(read_header(f).expected) > 1 for f in FILES) >= 2, "some files have two mistakes"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_broken_file_is_refused_with_exactly_its_problems(path: Path) -> None:
    header = read_header(path)
    problems = problems_of(lambda: load_policy(path))
    assert [(p.line, p.where, p.message, p.hint) for p in problems] == header.expected
    file = display_path(path)
    for p, (line, where, message, _hint) in zip(problems, header.expected, strict=True):
        assert p.file == file
        assert str(p).startswith(f"{file}:{line}: [{where}] {message}")


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_broken_file_loads_once_its_mistake_is_undone(path: Path) -> None:
    header = read_header(path)
    if not header.fixes:
        pytest.skip("not a policy at all: nothing to undo")
    text = header.body
    for wrong, right in header.fixes:
        assert text.count(wrong) == 1, f"the fix must name one place: {wrong!r}"
        text = text.replace(wrong, right)
    policy = parse_policy_text(text, path.name)
    assert policy.items


def test_unknown_field_suggests_the_closest_name() -> None:
    problems = problems_of(lambda: load_policy(BROKEN / "unknown_field.yaml"))
    assert problems[0].hint == "你是想写 `layoff_rate` 吗？"
    assert "wengang-2025/sme/layoff" in str(problems[0])


def test_non_utf8_file_is_refused_with_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    text = "id: gaoxin-2025\nversion: 1\ntitle: 2025年高新技术企业认定奖励\n"
    path.write_bytes(text.encode("gbk"))
    problems = problems_of(lambda: load_policy(path))
    assert [(p.line, p.where, p.message, p.hint) for p in problems] == [
        (3, "gaoxin-2025", "文件不是 UTF-8 编码，看起来是 GBK/GB18030 编码", "用编辑器把文件另存为 UTF-8")
    ]


def test_binary_file_is_refused_as_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\xfd")
    problems = problems_of(lambda: load_policy(path))
    assert [(p.line, p.message) for p in problems] == [(1, "文件不是 UTF-8 编码")]


def test_utf8_with_byte_order_mark_is_accepted(tmp_path: Path, gaoxin_yaml: str) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(gaoxin_yaml.encode("utf-8-sig"))
    assert load_policy(path).id == "gaoxin-2025"


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    problems = problems_of(lambda: load_policy(tmp_path / "nope.yaml"))
    assert problems[0].message.startswith("无法读取文件")


def test_money_in_the_file_is_read_exactly_not_as_float() -> None:
    policy = parse_policy_text(
        "id: big\nversion: 1\ntitle: 大额\ndepartment: 财政局\nsource: {document: 某财发〔2025〕1号}\n"
        "valid_from: 2025-01-01\nvalid_to: 2025-12-31\nassessment_year: 2024\nperiod: 2025\n"
        "budget: 99999999999999.99\nitems:\n  - {id: a, title: 奖励, amount: 1000.10, cap: 0.30}\n",
        "big.yaml",
    )
    assert str(policy.budget) == "99999999999999.99"
    assert policy.items[0].amount == "1000.10"
    assert str(policy.items[0].cap) == "0.30"
    assert policy.period == "2025"


# --- rule sets: several files, published versions ------------------------------------------------------------


def test_a_rule_set_with_one_bad_file_loads_nothing_and_lists_every_problem(
    policy_dir: Callable[[dict[str, str]], Path], wengang_yaml: str
) -> None:
    two = (BROKEN / "two_problems_in_two_items.yaml").read_text(encoding="utf-8")
    one = (BROKEN / "unknown_field.yaml").read_text(encoding="utf-8")
    folder = policy_dir({"a-good.yaml": wengang_yaml, "b-two.yaml": two, "c-one.yaml": one})
    problems = problems_of(lambda: load_ruleset(folder))
    assert [(Path(p.file).name, p.line, p.message) for p in problems] == [
        ("b-two.yaml", 41, "`cap`：不能为负数"),
        ("b-two.yaml", 50, "未知字段 `size_clas`"),
        ("c-one.yaml", 37, "未知字段 `layof_rate`"),
    ]


def test_two_files_with_the_same_id_and_version_are_refused(
    policy_dir: Callable[[dict[str, str]], Path], gaoxin_yaml: str
) -> None:
    other = gaoxin_yaml.replace("title: 2025年高新技术企业认定奖励", "title: 高新技术企业奖励（副本）")
    folder = policy_dir({"a.yaml": gaoxin_yaml, "b.yml": other})
    problems = problems_of(lambda: load_ruleset(folder))
    a, b = display_path(folder / "a.yaml"), display_path(folder / "b.yml")
    assert [(p.file, p.line, p.where, p.message, p.hint) for p in problems] == [
        (
            b,
            1,
            "gaoxin-2025",
            f"政策 gaoxin-2025 第 1 版与 {a} 重复",
            "同一 id 和版本只能有一个文件；修改内容请提高 version",
        )
    ]


def test_a_published_version_changed_in_place_is_refused(
    policy_dir: Callable[[dict[str, str]], Path], gaoxin_yaml: str, wengang_yaml: str
) -> None:
    published = load_ruleset(policy_dir({"gaoxin.yaml": gaoxin_yaml, "wengang.yaml": wengang_yaml}))
    changed = gaoxin_yaml.replace("amount: 200000", "amount: 300000")
    folder = policy_dir({"gaoxin.yaml": changed, "wengang.yaml": wengang_yaml})
    problems = problems_of(lambda: load_ruleset(folder, published=published))
    assert [(p.file, p.line, p.where, p.message, p.hint) for p in problems] == [
        (
            display_path(folder / "gaoxin.yaml"),
            1,
            "gaoxin-2025",
            "已发布的第 1 版被修改",
            "已发布的版本不可更改；请把 version 改为 2",
        )
    ]


def test_a_published_version_may_be_reformatted_or_followed_by_a_new_version(
    policy_dir: Callable[[dict[str, str]], Path], gaoxin_yaml: str
) -> None:
    published = load_ruleset(policy_dir({"gaoxin.yaml": gaoxin_yaml}))
    reformatted = "# 重新排版\n" + gaoxin_yaml.replace("budget: 5000000.00", "budget: 5000000")
    version_2 = gaoxin_yaml.replace("version: 1", "version: 2").replace("amount: 200000", "amount: 300000")
    folder = policy_dir({"gaoxin.yaml": reformatted, "gaoxin-v2.yaml": version_2})
    ruleset = load_ruleset(folder, published=published)
    assert [p.key for p in ruleset] == ["gaoxin-2025@1", "gaoxin-2025@2"]


# --- the command line ----------------------------------------------------------------------------------------


def test_cli_validate_exits_1_and_prints_every_problem(policy_dir: Callable[[dict[str, str]], Path]) -> None:
    files = {f.name: f.read_text(encoding="utf-8") for f in FILES}
    folder = policy_dir(files)
    expected = problems_of(lambda: load_ruleset(folder))
    result = CliRunner().invoke(rules_cmd.app, ["validate", str(folder)])
    assert result.exit_code == 1
    assert f"共 {len(expected)} 个问题，文件未载入" in result.output
    for problem in expected:
        assert str(problem) in result.output
    assert len(expected) == sum(len(read_header(f).expected) for f in FILES)


def test_cli_validate_exits_0_on_a_good_folder(
    policy_dir: Callable[[dict[str, str]], Path], wengang_yaml: str, gaoxin_yaml: str
) -> None:
    folder = policy_dir({"wengang.yaml": wengang_yaml, "gaoxin.yaml": gaoxin_yaml})
    result = CliRunner().invoke(rules_cmd.app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    assert "通过：2 项政策、3 个兑现事项" in result.output
    assert load_ruleset(folder).fingerprint in result.output


def test_cli_validate_refuses_a_changed_published_version(
    policy_dir: Callable[[dict[str, str]], Path], gaoxin_yaml: str
) -> None:
    published = policy_dir({"gaoxin.yaml": gaoxin_yaml})
    folder = policy_dir({"gaoxin.yaml": gaoxin_yaml.replace("amount: 200000", "amount: 1")})
    result = CliRunner().invoke(rules_cmd.app, ["validate", str(folder), "--published", str(published)])
    assert result.exit_code == 1
    assert "已发布的第 1 版被修改" in result.output


def test_cli_validate_refuses_an_empty_folder(policy_dir: Callable[[dict[str, str]], Path]) -> None:
    folder = policy_dir({})
    result = CliRunner().invoke(rules_cmd.app, ["validate", str(folder)])
    assert result.exit_code == 1
    assert "目录中没有政策文件" in result.output


def test_zhida_rules_validate_is_wired_into_the_main_command(
    policy_dir: Callable[[dict[str, str]], Path], gaoxin_yaml: str
) -> None:
    from api.cli import app

    bad = (BROKEN / "negative_budget.yaml").read_text(encoding="utf-8")
    folder = policy_dir({"gaoxin.yaml": gaoxin_yaml, "bad.yaml": bad})
    result = CliRunner().invoke(app, ["rules", "validate", str(folder)])
    assert result.exit_code == 1
    assert "`budget`：不能为负数" in result.output


def test_an_item_with_more_conditions_than_the_matcher_has_bits_is_refused() -> None:
    shared = "".join(
        f"  - id: c{n}\n    text: 条件{n}\n    rule: employees >= {n}\n" for n in range(MAX_CONDITIONS)
    )
    text = (
        "id: many-2025\nversion: 1\ntitle: 条件很多的政策\ndepartment: 测试局\nsource: {document: 测试}\n"
        'valid_from: 2025-01-01\nvalid_to: 2025-12-31\nassessment_year: 2024\nperiod: "2025"\n'
        f"conditions:\n{shared}items:\n  - id: award\n    title: 奖励\n    amount: 1000\n"
    )
    assert parse_policy_text(text, "many.yaml").items[0].id == "award"  # 62 conditions: accepted
    one_more = (
        text + "    conditions:\n      - id: extra\n        text: 再多一个\n        rule: revenue > 0\n"
    )
    (problem,) = problems_of(lambda: parse_policy_text(one_more, "many.yaml"))
    assert (
        problem.message
        == f"事项共有 {MAX_CONDITIONS + 1} 个条件（含共同条件），超过 {MAX_CONDITIONS} 个的上限"
    )
    assert problem.where == "many-2025/award" and problem.line == 3 * MAX_CONDITIONS + 15  # its `conditions:`
    assert problem.hint is not None and "拆" in problem.hint


def test_the_zhida_console_script_exits_non_zero_on_a_broken_policy_or_a_wrong_option(
    policy_dir: Callable[[dict[str, str]], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from api.cli import main

    bad = (BROKEN / "negative_budget.yaml").read_text(encoding="utf-8")
    folder = policy_dir({"bad.yaml": bad})
    monkeypatch.setattr(sys, "argv", ["zhida", "rules", "validate", str(folder)])
    with pytest.raises(SystemExit) as exited:  # a CI step running `zhida rules validate` must fail
        main()
    assert exited.value.code == 1
    assert "`budget`：不能为负数" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["zhida", "bench", "match", "--statements", "-1"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--statements" in err and "Traceback" not in err
