"""Enterprise sign-in: the identity adapter for the provincial unified identity (法人登录, OpenID Connect)
and the enterprise's session cookie, separate from the staff session.

- `IdentityProvider` is the small interface a sign-in adapter offers: `start` (where to send the
  browser, and what to remember for the way back) and `finish` (the enterprise's USCC, or LoginError).
- `OidcProvider` implements it with authlib: discovery from the issuer, the authorization-code flow with
  PKCE (S256), `state` and `nonce`, the code exchange (client secret), and ID token validation (signature
  against the provider's JWKS, issuer, audience, expiry, nonce). The USCC comes from a configurable claim.
- `EnterpriseTokens` signs the enterprise session (salt distinct from the staff session's) and the
  short-lived record of an OIDC flow under way, both with the service's secret key.
The built-in fallback, a one-time code by SMS, is `portal.identity`.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError

from api.settings import Settings
from matcher.codes import is_uscc
from payouts.errors import LoginError

ENTERPRISE_COOKIE = "zhida_ent"
FLOW_COOKIE = "zhida_oidc"
FLOW_SECONDS = 600  # the browser has ten minutes at the provider


def valid_uscc(text: str) -> str:
    """The USCC, upper-case and checked (GB 32100-2015 check character); LoginError when it is not one."""
    code = "".join(text.split()).replace("-", "").upper()
    if not is_uscc(code):
        raise LoginError("统一社会信用代码有误，请核对（18位，含校验码）")
    return code


@dataclass(frozen=True)
class EnterpriseClaim:
    """What a valid enterprise session says: which enterprise, signed in how."""

    uscc: str
    via: str
    at: dt.datetime  # when it signed in


class EnterpriseTokens:
    """Signs and checks enterprise sessions and OIDC flow records."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="zhida-enterprise-session")
        self._flows = URLSafeTimedSerializer(secret, salt="zhida-enterprise-oidc-flow")
        self.max_age = max_age_seconds

    def session(self, uscc: str, via: str, at: dt.datetime | None = None) -> str:
        """A session token for the enterprise, signed in now (or `at`)."""
        at = at or dt.datetime.now(dt.UTC)
        return self._sessions.dumps({"e": uscc, "v": via, "t": at.timestamp()})

    def read_session(self, token: str | None) -> EnterpriseClaim | None:
        if not token:
            return None
        try:
            data = self._sessions.loads(token, max_age=self.max_age)
        except BadSignature:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("e"), str)
            or not isinstance(data.get("v"), str)
            or not isinstance(data.get("t"), float)
        ):
            return None
        return EnterpriseClaim(data["e"], data["v"], dt.datetime.fromtimestamp(data["t"], dt.UTC))

    def flow(self, record: dict[str, str]) -> str:
        return self._flows.dumps(record)

    def read_flow(self, token: str | None) -> dict[str, str] | None:
        if not token:
            return None
        try:
            data = self._flows.loads(token, max_age=FLOW_SECONDS)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what the way back must match (kept in a signed cookie)."""

    url: str
    flow: dict[str, str]


class IdentityProvider(Protocol):
    """A sign-in adapter: send the browser away, then turn what comes back into a USCC."""

    name: str

    def start(self, redirect_uri: str) -> Authorization: ...

    def finish(self, params: dict[str, str], flow: dict[str, str] | None) -> str: ...


class _OidcApp(OAuth2Mixin, OpenIDMixin, BaseApp):
    """authlib's framework-neutral OAuth 2 / OpenID client, on httpx."""

    client_cls = OAuth2Client


class OidcProvider:
    """The provincial unified identity (法人登录) over OpenID Connect; see the module docstring."""

    name = "oidc"

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret):
            raise LoginError(
                "未配置统一身份认证（ZHIDA_OIDC_ISSUER、ZHIDA_OIDC_CLIENT_ID、ZHIDA_OIDC_CLIENT_SECRET）"
            )
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.claim = settings.oidc_uscc_claim
        client_kwargs: dict[str, Any] = {
            "scope": settings.oidc_scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "timeout": 10.0,
        }
        if transport is not None:
            client_kwargs["transport"] = transport
        self._app = _OidcApp(
            framework=None,
            name="unified-identity",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )

    def _metadata(self) -> dict[str, Any]:
        try:
            metadata = self._app.load_server_metadata()
        except httpx.HTTPError as e:
            raise LoginError(f"统一身份认证服务暂不可用：{e}") from e
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            raise LoginError("统一身份认证服务的发现文档与配置的签发者（issuer）不符")
        return metadata

    def start(self, redirect_uri: str) -> Authorization:
        self._metadata()
        rv = self._app.create_authorization_url(redirect_uri=redirect_uri)
        flow = {
            "state": rv["state"],
            "nonce": rv["nonce"],
            "code_verifier": rv["code_verifier"],
            "redirect_uri": redirect_uri,
        }
        return Authorization(rv["url"], flow)

    def finish(self, params: dict[str, str], flow: dict[str, str] | None) -> str:
        if params.get("error"):
            raise LoginError(f"统一身份认证未通过：{params.get('error_description') or params['error']}")
        if flow is None or not params.get("state") or not hmac.compare_digest(params["state"], flow["state"]):
            raise LoginError("登录请求已失效或不匹配（state），请重新登录")
        if not params.get("code"):
            raise LoginError("统一身份认证未返回授权码")
        self._metadata()
        try:
            token = self._app.fetch_access_token(
                redirect_uri=flow["redirect_uri"], code=params["code"], code_verifier=flow["code_verifier"]
            )
            claims = self._app.parse_id_token(token, nonce=flow["nonce"])
        except (OAuthError, OAuth2Error, JoseError, httpx.HTTPError, ValueError) as e:
            raise LoginError(f"统一身份认证的令牌无效：{e}") from e
        if claims is None:
            raise LoginError("统一身份认证未返回身份令牌（id_token）")
        value = claims.get(self.claim)
        if not isinstance(value, str):
            raise LoginError(f"身份令牌中没有统一社会信用代码（{self.claim}）")
        return valid_uscc(value)


def enterprise_setup(app: Any, settings: Settings) -> None:
    """What the enterprise side keeps in the app's state: its session signer, the per-run cache of
    standings, the OIDC adapter (when configured) and the rate limits of sign-in codes."""
    from api.ratelimit import limiter
    from portal.standings import Standings

    app.state.enterprise_tokens = EnterpriseTokens(
        settings.secret_key.get_secret_value(), settings.enterprise_session_hours * 3600
    )
    app.state.standings = Standings(settings.data_dir / "enterprise_cache")
    app.state.oidc = OidcProvider(settings) if settings.oidc_issuer else None
    window = settings.login_code_window_seconds
    app.state.limits["code_ip"] = limiter(settings.redis_url, "code_ip", settings.login_code_ip_limit, window)
