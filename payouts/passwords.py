"""The staff password policy: long enough, not the user's name, not a common password.

`common_passwords.txt` (beside this file) lists passwords that lead the public rankings of leaked
passwords, Chinese ones included (`woaini1314`, `5201314`), one a line, lower case. A password is common if
it is on the list, or is a listed word with digits or symbols added before or after (`password2024!`),
or one character repeated, compared without regard to case.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from rules.errors import PayoutError

MIN_CHARS = 12
MAX_CHARS = 256
COMMON_LIST = Path(__file__).with_name("common_passwords.txt")
_PADDING = re.compile(r"^[\d\W_]*(.*?)[\d\W_]*$")


class PasswordPolicyError(PayoutError):
    """A password the policy refuses; the message says which rule and how to choose a better one."""


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def is_common(password: str) -> bool:
    """Whether `password` is a listed common password, one padded with digits or symbols, or one repeated
    character."""
    lowered = password.lower()
    listed = common_passwords()
    if lowered in listed or len(set(lowered)) <= 2:
        return True
    core = _PADDING.match(lowered)
    return core is not None and len(core.group(1)) >= 4 and core.group(1) in listed


def check(username: str, password: str) -> None:
    """Refuse a staff password that breaks the policy, saying why (PasswordPolicyError)."""
    if len(password) < MIN_CHARS:
        raise PasswordPolicyError(
            f"密码至少 {MIN_CHARS} 个字符（现为 {len(password)} 个），建议使用几个词组成的长短语"
        )
    if len(password) > MAX_CHARS:
        raise PasswordPolicyError(f"密码至多 {MAX_CHARS} 个字符")
    if password.isdigit():
        raise PasswordPolicyError("密码不能全是数字（日期、电话号码容易被猜中），请加入字母")
    if username and username.lower() in password.lower():
        raise PasswordPolicyError("密码不能包含用户名，请另选一个")
    if is_common(password):
        raise PasswordPolicyError("该密码过于常见，容易被猜中，请另选一个（勿用常见词加数字或符号）")
