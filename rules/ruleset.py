"""A rule set: a directory of policy files, checked together, with a content fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rules.errors import PolicyError, Problem, display_path
from rules.policy import Policy
from rules.validate import load_policy

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RuleSet:
    """Every policy of a directory, in id order."""

    policies: tuple[Policy, ...]

    @property
    def fingerprint(self) -> str:
        """Hash of the normalised content: the same rules give the same fingerprint, whatever the files look like."""
        canonical = [p.canonical() for p in self.policies]
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    def active(self, as_of: dt.date) -> RuleSet:
        return RuleSet(tuple(p for p in self.policies if p.active_on(as_of)))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file())


def load_ruleset(directory: Path, published: RuleSet | None = None) -> RuleSet:
    """Load and check every policy file of a directory; refuse the set with every problem of every file.

    `published`, when given, holds versions already published: the same (id, version) with different
    content is refused, since a published version is immutable.
    """
    if not directory.is_dir():
        raise PolicyError(
            [Problem(display_path(directory), None, "?", "不是一个目录", "给出存放政策 YAML 文件的目录")]
        )
    problems: list[Problem] = []
    policies: list[Policy] = []
    where: dict[tuple[str, int], str] = {}
    for path in policy_files(directory):
        try:
            policy = load_policy(path)
        except PolicyError as e:
            problems.extend(e.problems)
            continue
        key = (policy.id, policy.version)
        if key in where:
            problems.append(
                Problem(
                    display_path(path),
                    1,
                    policy.id,
                    f"政策 {policy.id} 第 {policy.version} 版与 {where[key]} 重复",
                    "同一 id 和版本只能有一个文件；修改内容请提高 version",
                )
            )
            continue
        where[key] = display_path(path)
        policies.append(policy)
    if published is not None:
        problems.extend(changed_in_place(published, policies, where))
    if problems:
        raise PolicyError(problems)
    return RuleSet(tuple(sorted(policies, key=lambda p: (p.id, p.version))))


def changed_in_place(
    published: RuleSet, policies: list[Policy], where: dict[tuple[str, int], str]
) -> list[Problem]:
    """Problems for every published (id, version) whose content differs: published versions are immutable."""
    by_key = {(p.id, p.version): p for p in published}
    out = []
    for p in policies:
        old = by_key.get((p.id, p.version))
        if old is not None and old != p:
            out.append(
                Problem(
                    where[(p.id, p.version)],
                    1,
                    p.id,
                    f"已发布的第 {p.version} 版被修改",
                    f"已发布的版本不可更改；请把 version 改为 {p.version + 1}",
                )
            )
    return out


def library_dir() -> Path:
    from rules import DATA_DIR

    return DATA_DIR / "policies"
