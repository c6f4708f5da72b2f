"""``POST /oauth2/server/token``: client credentials in Bizagi's shape, and the tokens it issued."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Callable
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


class TokenEndpoint:
    def __init__(self, config: EmulatorConfig, store: TokenStore) -> None:
        self.config = config
        self.store = store

    async def handle(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        failure = self._client_problem(request, form) or self._form_problem(request, form)
        if failure is not None:
            status, error, description = failure
            return oauth_error_response(status, error, description, self.config.token_errors_as_200)
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
