"""The service's settings: one pydantic-settings class read from `ZHIDA_*` variables.

Development works out of the box (an SQLite file under `var/`, a per-process secret key, the public
development audit key). Production (`ZHIDA_ENV=production`) refuses what is only safe on a developer's
machine: the placeholder or a short secret key, a missing, short or development audit key, no
directory for audit checkpoints, SQLite, cookies without `Secure`, and the demo phone that shows SMS
links in the browser.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from payouts import audit, tokens
from payouts.db import DEFAULT_URL, PayoutSettings
from reports.sla import Sla

if TYPE_CHECKING:
    from portal.outreach import OutreachSettings

PLACEHOLDER_SECRET = "change-me"
MIN_SECRET_CHARS = 32


class SlaSettings(BaseSettings):
    """The SLA's limits (`ZHIDA_SLA_*`), alone: `zhida report` reads them without the service's secrets."""

    model_config = SettingsConfigDict(env_prefix="ZHIDA_", extra="ignore")

    # The SLA (reports.sla), in working days by the official calendar: yellow from `limit - warn`, red past
    # `limit`; payment runs from confirmation to money (制单 2 + 复核 1 + the bank the rest).
    sla_review_days: int = 2
    sla_payment_days: int = 5
    sla_warn_days: int = 1
    sla_confirm_warn_days: int = 3  # the confirm stage turns yellow this many days before the link expires

    def sla(self) -> Sla:
        """The one SLA with these limits (the console's lights and `zhida report` use it)."""
        return Sla(
            review_days=self.sla_review_days,
            payment_days=self.sla_payment_days,
            warn_days=self.sla_warn_days,
            confirm_warn_days=self.sla_confirm_warn_days,
        )


class Settings(SlaSettings):
    """Everything `zhida serve` reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="ZHIDA_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_URL
    # The owner role's URL, for migrations only; the service itself connects as a role that owns
    # nothing (`zhida db grant`). Unset: migrations run over database_url.
    migration_database_url: str | None = None
    # The audit chain's HMAC key (payouts/audit.py reads ZHIDA_AUDIT_KEY itself; checked here so that
    # production refuses to start without one) and where signed checkpoints of its head are written.
    audit_key: SecretStr | None = None
    audit_checkpoint_dir: Path | None = None
    # Derives the SMS link tokens (payouts/tokens.py); never in the database. Development: a public key.
    link_key: SecretStr | None = None
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    public_url: str = "http://127.0.0.1:8000"  # where staff reach the console; SMS links too by default
    link_base: str | None = None  # the public confirm page; default: public_url + "/c/"
    data_dir: Path = Path("var/web")  # match runs, bank files, evidence (the policy store is in the database)
    snapshots_root: Path = Path("var/snapshots")  # one sub-folder per registry snapshot
    as_of: dt.date | None = None  # default evaluation date of match runs and simulations (None: today)
    # Staff sessions (payouts/signin.py): end after this long without a request, and this long after sign-in.
    session_idle_minutes: int = Field(default=30, ge=1)
    session_max_hours: int = Field(default=8, ge=1)
    cookie_secure: bool = False
    # Staff lockout: this many wrong passwords within the window lock the account until it is unlocked.
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_minutes: int = Field(default=15, ge=1)
    # The reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated); from any
    # other peer the header is ignored and the client is the peer itself (api/deps.py `client_address`).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # Public confirm page: at most `count` requests per `window` seconds per IP and per link.
    confirm_ip_limit: int = 60
    confirm_token_limit: int = 20
    confirm_window_seconds: int = 600
    login_limit: int = 10  # failed or not, per IP and username, per confirm_window_seconds
    # Run durable jobs (match runs, SMS waves, reminders, the expiry sweep) in a thread of the web process
    # (api/worker.py). Production turns it off (`zhida serve --no-worker`) and runs `zhida worker` instead.
    worker: bool = True
    # Every worker queues the periodic jobs (reminders daily, the expiry sweep hourly), once per period.
    schedule: bool = True
    # Outreach (portal/outreach.py): SMS per enterprise per calendar month, at most.
    outreach_per_month: int = Field(default=2, ge=0, le=10)
    # The SMS gateway's callback for replies (回复TD退订, api/routes/replies.py): the shared secret it signs
    # with (unset: no callback), and calls per address per window.
    sms_reply_secret: SecretStr | None = None
    sms_reply_limit: int = Field(default=120, ge=1)
    sms_reply_window_seconds: int = Field(default=60, ge=1)
    worker_lease_seconds: int = Field(
        default=60, ge=5
    )  # a job whose worker stops beating is retried after this
    demo_phone: bool = False  # show the SMS this process sent, with their links, at /demo/phone
    objection_ip_limit: int = 5  # objections (异议) filed per IP per confirm_window_seconds on /gongshi
    # Enterprise sign-in (法人登录): the provincial unified identity by OIDC when an issuer is set, and the
    # built-in fallback, a one-time code by SMS to the registered contact phone (api/enterprise_auth.py).
    oidc_issuer: str | None = None  # e.g. https://id.example.gov.cn/oidc (discovery: /.well-known/...)
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    # Rate limits shared by every worker (redis://host:6379/0); unset: each process keeps its own.
    redis_url: str | None = None
    metrics_token: SecretStr | None = None  # production: /metrics answers only this Bearer token
    oidc_uscc_claim: str = "uscc"  # the ID token claim that carries the enterprise's USCC
    oidc_scope: str = "openid"
    sms_login: bool = True
    # The service phone (咨询电话) the SMS and the enterprise's pages give where a policy names none.
    service_phone: str = Field(default="12345", pattern=r"^[0-9][0-9-]{3,19}$")
    enterprise_session_hours: int = 2
    login_code_ip_limit: int = 20  # codes asked for, and codes tried, per IP per window
    login_code_window_seconds: int = 900
    # Load (api/admission.py): requests served at once (also the database pool's size), how many more
    # may wait their turn and for how long; beyond that the answer is a quick 503 with Retry-After.
    max_in_flight: int = Field(default=8, ge=1, le=256)
    max_queued: int = Field(default=1000, ge=0)
    queue_wait_seconds: float = Field(default=3.0, gt=0)
    shutdown_seconds: float = Field(default=5.0, gt=0)  # `serve`: SIGTERM lets requests finish this long

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=False)
                except ValueError:
                    raise ValueError(
                        f"ZHIDA_TRUSTED_PROXIES 中的 {item!r} 不是 IP 地址或网段（例：10.0.0.5,10.1.0.0/16）"
                    ) from None
        return value

    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The trusted proxies as networks (an address is a network of one)."""
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.env != "production":
            if self.secret_key.get_secret_value() == PLACEHOLDER_SECRET:
                # Sessions last as long as the process: fine on a developer's machine, never in production.
                self.secret_key = SecretStr(secrets.token_urlsafe(32))
            return self
        problems = []
        key = self.secret_key.get_secret_value()
        if key == PLACEHOLDER_SECRET or len(key) < MIN_SECRET_CHARS:
            problems.append(f"ZHIDA_SECRET_KEY 必须设置为至少 {MIN_SECRET_CHARS} 个字符的随机值")
        audit_key_problem = audit.key_problem(self.audit_key.get_secret_value() if self.audit_key else None)
        if audit_key_problem:
            problems.append(audit_key_problem)
        link_key_problem = tokens.link_key_problem(
            self.link_key.get_secret_value() if self.link_key else None
        )
        if link_key_problem:
            problems.append(link_key_problem)
        reply_secret = self.sms_reply_secret.get_secret_value() if self.sms_reply_secret else None
        if reply_secret is not None and len(reply_secret) < MIN_SECRET_CHARS:
            problems.append(
                f"ZHIDA_SMS_REPLY_SECRET（上行短信回调的签名密钥）须为至少 {MIN_SECRET_CHARS} 个字符的随机值"
            )
        if self.audit_checkpoint_dir is None:
            problems.append("生产环境须设置 ZHIDA_AUDIT_CHECKPOINT_DIR（审计日志签名检查点的库外目录）")
        if self.database_url.startswith("sqlite"):
            problems.append("生产环境不能使用 SQLite：请设置 ZHIDA_DATABASE_URL 为 PostgreSQL 地址")
        if not self.cookie_secure:
            problems.append("生产环境须设置 ZHIDA_COOKIE_SECURE=true（仅通过 HTTPS 发送会话 Cookie）")
        if self.demo_phone:
            problems.append("生产环境不能开启 ZHIDA_DEMO_PHONE（它会在网页上显示短信链接）")
        if not self.public_url.startswith("https://"):
            problems.append("生产环境的 ZHIDA_PUBLIC_URL 必须是 https:// 地址")
        if self.oidc_issuer and not self.oidc_issuer.startswith("https://"):
            problems.append("生产环境的 ZHIDA_OIDC_ISSUER（统一身份认证）必须是 https:// 地址")
        if problems:
            raise ValueError("；".join(problems))
        return self

    @property
    def confirm_link_base(self) -> str:
        return self.link_base or self.public_url.rstrip("/") + "/c/"

    @property
    def rating_link_base(self) -> str:
        """The rating page behind the closing SMS (`/r/`), next to the confirmation page."""
        return self.confirm_link_base.rstrip("/").removesuffix("/c") + "/r/"

    def payouts(self) -> PayoutSettings:
        """The payouts settings, with this service's database and confirm page."""
        payouts = PayoutSettings.from_env()
        return dataclasses.replace(
            payouts,
            link_key=self.link_key.get_secret_value() if self.link_key else payouts.link_key,
            database_url=self.database_url,
            migration_database_url=self.migration_database_url,
            link_base=self.confirm_link_base,
            service_phone=self.service_phone,
        )

    def outreach(self) -> OutreachSettings:
        """The outreach limits, with the enterprise supply page of this service and the SMS sign."""
        from portal.outreach import OutreachSettings

        return OutreachSettings(
            per_month=self.outreach_per_month,
            link=self.public_url.rstrip("/") + "/e/supplied",
            sign=self.payouts().sms_sign,
        )

    def default_as_of(self) -> dt.date:
        return self.as_of or dt.date.today()
