"""``POST /oauth2/server/token``: client credentials, and the tokens issued.

Bizagi's flavour hands out opaque 64-hex tokens; the standard flavour JWT-shaped ones (RFC 7519,
HS256 with a key of this server), as most OAuth2 servers in front of OData services do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.errors import oauth_error_response


class TokenStore:
    """Opaque 64-hex tokens and when they expire (``ttl`` 0 = never)."""

    def __init__(self, ttl: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._expiry: dict[str, float] = {}
        self.issued = 0

    def issue(self) -> str:
        now = self.clock()
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}  # forget dead ones
        token = secrets.token_hex(32)
        self._expiry[token] = now + self.ttl if self.ttl else float("inf")
        self.issued += 1
        return token

    def problem(self, token: str) -> str | None:
        """Why ``token`` is refused, or None when it is good."""
        expiry = self._expiry.get(token)
        if expiry is None:
            return "The access token is not valid."
        if expiry <= self.clock():
            return "The access token has expired."
        return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class JwtStore:
    """JWT-shaped bearer tokens: ``header.payload.signature``, HS256 with a per-server key.

    Checked as a resource server checks them, without a table of issued tokens: the signature
    must be this server's and ``exp`` (wall-clock seconds) in the future. ``ttl`` 0 issues
    tokens without ``exp`` that never expire.
    """

    HEADER = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"}))

    def __init__(self, ttl: int, subject: str, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.subject = subject
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self.issued = 0

    def issue(self, issuer: str, audience: str, scope: str) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {"iss": issuer, "sub": self.subject, "aud": audience, "iat": now}
        if self.ttl:
            claims["exp"] = now + self.ttl
        claims |= {"scope": scope, "jti": secrets.token_hex(8)}
        signed = f"{self.HEADER}.{_b64url(orjson.dumps(claims))}"
        self.issued += 1
        return f"{signed}.{self._sign(signed)}"

    def problem(self, token: str) -> str | None:
        """Why ``token`` is refused, or None when it is good."""
        signed, _, signature = token.rpartition(".")
        good = self._sign(signed).encode()
        if signed.count(".") != 1 or not hmac.compare_digest(signature.encode(), good):
            return "The access token is not valid."
        try:
            claims = orjson.loads(_unb64url(signed.partition(".")[2]))
        except (binascii.Error, ValueError):
            return "The access token is not valid."
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if exp is not None and exp <= self.clock():
            return "The access token has expired."
        return None

    def _sign(self, signed: str) -> str:
        return _b64url(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())


class TokenEndpoint:
    def __init__(self, config: EmulatorConfig, store: TokenStore | JwtStore) -> None:
        self.config = config
        self.store = store

    async def handle(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        failure = self._client_problem(request, form) or self._form_problem(request, form)
        flavor = self.config.flavor
        if failure is not None:
            status, error, description = failure
            headers = None
            if flavor == "standard" and status == 401:  # RFC 6749 §5.2
                headers = {"WWW-Authenticate": 'Basic realm="oauth2"'}
            return oauth_error_response(
                status, error, description, self.config.token_errors_as_200, flavor, headers
            )
        if isinstance(self.store, JwtStore):
            base = f"{request.url.scheme}://{request.url.netloc}"
            scope = " ".join(form["scope"][0].split())
            body: dict[str, Any] = {
                "access_token": self.store.issue(f"{base}/oauth2/server", f"{base}/odata", scope),
                "token_type": "Bearer",
            }
            if self.config.token_ttl:
                body["expires_in"] = self.config.token_ttl
            body["scope"] = scope
            return Response(
                orjson.dumps(body),
                200,
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},  # RFC 6749 §5.1
                media_type="application/json",
            )
        body = {
            "access_token": self.store.issue(),
            "token_type": "bearer",
            "expires_in": self.config.token_ttl,
            "scope": "api openid",
            "http_status_code": 200,
        }
        return Response(orjson.dumps(body), 200, media_type="application/json")

    def _client_problem(
        self, request: Request, form: dict[str, list[str]]
    ) -> tuple[int, str, str] | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if self.config.accept_form_credentials and "client_secret" in form and not header:
            client_id = form.get("client_id", [""])[0]
            secret = form["client_secret"][0]
        elif scheme.lower() != "basic" or not encoded:
            return 401, "invalid_client", "Client authentication with HTTP Basic is required."
        else:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return 401, "invalid_client", "The Basic credentials are not valid base64."
            client_id, _, secret = decoded.partition(":")
        id_ok = hmac.compare_digest(client_id.encode(), self.config.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.config.client_secret.encode())
        if not (id_ok and secret_ok):
            return 401, "invalid_client", "Client authentication failed."
        return None

    def _form_problem(
        self, request: Request, form: dict[str, list[str]]
    ) -> tuple[int, str, str] | None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return 400, "invalid_request", "The body must be application/x-www-form-urlencoded."
        grant = form.get("grant_type", [""])[0]
        if not grant:
            return 400, "invalid_request", "The grant_type parameter is missing."
        if grant != "client_credentials":
            return 400, "unsupported_grant_type", f"The grant type {grant!r} is not supported."
        requested = form.get("scope", [""])[0].split()
        if not requested or any(s not in self.config.scopes for s in requested):
            return 400, "invalid_scope", "The requested scope is invalid or not granted."
        return None
