"""The connector against an attacker playing an unlucky operator and a hostile server: deadlines
that hold however the server trickles, answers too large to buffer, and servers that echo the
credentials back. Every server is on 127.0.0.1 and every server loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from conftest import TINY_CLIENT_ID, TINY_SECRET, presented_credentials, tiny, tiny_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bizagi_etl.cli import main
from bizagi_etl.connector.auth import BizagiAuth
from bizagi_etl.connector.client import BizagiClient, RequestStats
from bizagi_etl.connector.errors import (
    AuthError,
    BizagiError,
    ResponseError,
    ServerError,
    TransportError,
)
from bizagi_etl.connector.redact import Redactor, basic_credentials, scrub
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.emulator.server import AsgiServer

# Wall-clock bounds: make test runs this file alone, after the others (pytest -m timing).
pytestmark = pytest.mark.timing

MiB = 1024 * 1024
TOKEN_PATH = "/oauth2/server/token"


def token_body(token: str = "tok-aaaa-0001") -> dict[str, Any]:
    return {"access_token": token, "token_type": "bearer", "expires_in": 3600,
            "http_status_code": 200}  # fmt: skip


@contextmanager
def app_server(
    data: Callable[[Request], Any], token: Callable[[Request], Any] | None = None
) -> Iterator[AsgiServer]:
    """``token`` answers the token endpoint (default: a good token), ``data`` the rest."""

    async def endpoint(request: Request) -> Response:
        if request.url.path == TOKEN_PATH:
            if token is None:
                return JSONResponse(token_body())
            return await token(request)
        return await data(request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with AsgiServer(app) as server:
        yield server


async def _trickle(byte: bytes, every: float, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):  # bounded: count * every seconds at most
        yield byte
        await asyncio.sleep(every)


def trickling(every: float = 0.1, count: int = 300) -> Callable[[Request], Any]:
    async def answer(_: Request) -> Response:
        return StreamingResponse(_trickle(b" ", every, count), media_type="application/json")

    return answer


def settings_for(server: AsgiServer, **changes: Any) -> BizagiSettings:
    return tiny_settings(server, **({"max_retries": 0, "max_backoff": 0.1} | changes))


# -- deadlines ---------------------------------------------------------------------------------


def test_a_trickling_body_ends_at_the_request_deadline():
    with app_server(trickling()) as server:
        settings = settings_for(server, read_timeout=3, request_deadline=1.5)
        with BizagiClient(settings) as client:
            url = client.url("odata/data/cases")
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(url)
            took = time.monotonic() - began
    assert 1.4 <= took < 2.5, took
    error = caught.value
    assert error.kind == "timeout"
    assert url in str(error)
    assert "1.5 s request deadline (BIZAGI_REQUEST_DEADLINE)" in str(error)
    assert "\n" not in str(error)


def test_the_issues_trickle_ends_with_the_retry_budget():
    """The issue's case: a byte a second, BIZAGI_READ_TIMEOUT=3, BIZAGI_MAX_RETRIES=0 and a
    budget (10 s there, 3 s here): it ran for ever; the budget is now a hard ceiling."""
    with app_server(trickling(every=1.0, count=30)) as server:
        settings = settings_for(server, read_timeout=3, retry_budget=3)
        with BizagiClient(settings) as client:
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/cases"))
            took = time.monotonic() - began
    assert 2.9 <= took < 4.0, took
    assert caught.value.kind == "timeout"
    assert "3 s retry budget (BIZAGI_RETRY_BUDGET)" in str(caught.value)


def test_the_budget_bounds_attempts_and_waits_together():
    with app_server(trickling()) as server:
        settings = settings_for(server, request_deadline=0.7, retry_budget=2.5, max_retries=20,
                                read_timeout=3)  # fmt: skip
        stats = RequestStats()
        with BizagiClient(settings) as client:
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/cases"), stats)
            took = time.monotonic() - began
    assert took < 2.5 + 0.4, took  # no attempt ran past what was left of the budget
    assert stats.requests >= 2  # the deadline is retriable while the budget lasts ...
    assert stats.retries["timeout"] == stats.requests - 1
    assert stats.requests < 21  # ... and the budget, not max_retries, ended it
    assert caught.value.kind == "timeout"


def test_a_trickling_token_endpoint_is_bounded_by_the_deadline_of_the_request():
    seen: list[str] = []

    async def data(request: Request) -> Response:
        seen.append(request.url.path)
        return JSONResponse({"value": []})

    async def token(request: Request) -> Response:
        seen.append(request.url.path)
        return StreamingResponse(_trickle(b" ", 0.1, 300), media_type="application/json")

    with app_server(data, token) as server:
        settings = settings_for(server, read_timeout=3, request_deadline=1.0)
        with BizagiClient(settings) as client:
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/cases"))
            took = time.monotonic() - began
            # The token lock was released: a later call is not stuck behind it.
            assert client.auth._lock.acquire(timeout=1)
            client.auth._lock.release()
    assert took < 2.0, took
    assert caught.value.kind == "timeout"
    assert "request deadline" in str(caught.value)
    assert seen == [TOKEN_PATH]


@dataclass
class RawServer:
    """A raw TCP server on loopback, for what no HTTP framework will do (trickled headers)."""

    handle: Callable[[socket.socket, threading.Event], None]
    stop: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @contextmanager
    def running(self) -> Iterator[str]:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        workers: list[threading.Thread] = []

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                worker = threading.Thread(target=self._answer, args=(conn,), daemon=True)
                workers.append(worker)
                worker.start()

        acceptor = threading.Thread(target=serve, daemon=True)
        acceptor.start()
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            self.stop.set()
            acceptor.join(timeout=5)
            for worker in workers:
                worker.join(timeout=5)
            listener.close()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                self.handle(conn, self.stop)
            except OSError:
                return  # the client hung up: what it should do


def raw_settings(base_url: str, **changes: Any) -> BizagiSettings:
    # bearer_token: no token request, the raw server answers the data request only
    values: dict[str, Any] = {"base_url": base_url, "client_id": "c", "client_secret": "raw-bearer",
                              "auth_method": "bearer_token", "max_retries": 0}  # fmt: skip
    return BizagiSettings(**(values | changes))


def test_trickled_headers_are_cut_at_the_deadline():
    def trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(600):  # 30 s at most
            if stop.wait(0.05):
                return
            conn.sendall(b"a")

    with RawServer(trickle_headers).running() as base_url:
        settings = raw_settings(base_url, read_timeout=30, request_deadline=1.0)
        with BizagiClient(settings) as client:
            assert client.deadline_on_sockets
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/cases"))
            took = time.monotonic() - began
    assert took < 1.5, took
    assert caught.value.kind == "timeout"
    assert "1 s request deadline" in str(caught.value)


def test_a_body_that_stalls_late_is_cut_at_the_deadline_not_a_read_timeout_later():
    """Each read may wait at most what is left of the deadline, not a whole read timeout."""

    def trickle_then_stall(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n")  # fmt: skip
        for _ in range(15):  # 1.5 s of a byte every 0.1 s, then silence
            if stop.wait(0.1):
                return
            conn.sendall(b" ")
        stop.wait(30)

    with RawServer(trickle_then_stall).running() as base_url:
        settings = raw_settings(base_url, read_timeout=30, request_deadline=2.0)
        with BizagiClient(settings) as client:
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/cases"))
            took = time.monotonic() - began
    assert 1.9 <= took < 2.6, took  # a read timeout cut at the start would end at ~3.5 s
    assert caught.value.kind == "timeout"
    assert "2 s request deadline" in str(caught.value)


def test_a_throttle_longer_than_the_budget_fails_at_once():
    def throttle(_: Request) -> Response:
        return JSONResponse({"message": "slow down"}, 429, headers={"Retry-After": "30"})

    with tiny(throttle) as (server, _seen):
        settings = tiny_settings(server, max_retries=3, retry_budget=5)
        with BizagiClient(settings, sleep=lambda _: None) as client:
            with pytest.raises(ServerError) as first:
                client.get_json(client.url("odata/data/cases"))
            assert first.value.status == 429
            client._pause_everyone(30)  # as another thread's 429 would have
            began = time.monotonic()
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/processes"))
    assert time.monotonic() - began < 1
    assert "retry budget" in str(caught.value)


# -- answers too large to hold -----------------------------------------------------------------


class Sent:
    """Bytes a streaming answer has handed to the server so far."""

    def __init__(self) -> None:
        self.bytes = 0

    async def stream(
        self, total: int, chunk: bytes = b"x" * MiB, *, payload: bytes | None = None
    ) -> AsyncIterator[bytes]:
        if payload is not None:
            for i in range(0, len(payload), 64 * 1024):
                piece = payload[i : i + 64 * 1024]
                self.bytes += len(piece)
                yield piece
            return
        while self.bytes < total:  # bounded by total
            self.bytes += len(chunk)
            yield chunk
            await asyncio.sleep(0)


class PeakRss:
    """The largest growth of this process's resident memory while the block runs."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.base


def test_a_200_mb_answer_is_refused_while_streaming_and_memory_stays_bounded():
    sent = Sent()
    requests = 0

    async def huge(_: Request) -> Response:
        nonlocal requests
        requests += 1
        return StreamingResponse(sent.stream(200 * MiB), media_type="application/json")

    with app_server(huge) as server:
        settings = settings_for(server, max_retries=3)  # the default limit, 64 MiB
        with BizagiClient(settings) as client:
            url = client.url("odata/data/cases")
            began = time.monotonic()
            with PeakRss() as rss, pytest.raises(ResponseError) as caught:
                client.get_json(url)
            took = time.monotonic() - began
        time.sleep(0.3)  # let the server notice the hang-up
    error = caught.value
    assert error.kind == "too_large"
    assert not error.retriable
    assert requests == 1  # final: never retried
    message = str(error)
    assert url in message
    assert "64 MiB (67108864 bytes)" in message
    assert "BIZAGI_MAX_RESPONSE_BYTES" in message
    assert "\n" not in message
    assert sent.bytes < 64 * MiB + 24 * MiB, sent.bytes  # the client stopped reading early
    assert rss.growth < 120 * MiB, rss.growth / MiB  # the limit, not the 200 MiB answer
    assert took < 30, took


def test_a_declared_length_beyond_the_limit_is_refused_before_reading():
    sent = Sent()

    async def declared(_: Request) -> Response:
        headers = {"Content-Length": str(200 * MiB)}
        return StreamingResponse(sent.stream(200 * MiB), media_type="application/json",
                                 headers=headers)  # fmt: skip

    with app_server(declared) as server:
        with BizagiClient(settings_for(server, max_response_bytes=MiB)) as client:
            with pytest.raises(ResponseError) as caught:
                client.get_json(client.url("odata/data/cases"))
        time.sleep(0.3)
    assert caught.value.kind == "too_large"
    assert f"declares {200 * MiB} bytes (Content-Length)" in str(caught.value)
    assert "1 MiB (1048576 bytes)" in str(caught.value)
    assert sent.bytes < 24 * MiB, sent.bytes


def test_a_compressed_answer_counts_what_it_decodes_to():
    bomb = gzip.compress(b"\0" * (100 * MiB), compresslevel=9)  # ~100 KB on the wire
    sent = Sent()

    async def gzipped(_: Request) -> Response:
        return StreamingResponse(sent.stream(0, payload=bomb), media_type="application/json",
                                 headers={"Content-Encoding": "gzip"})  # fmt: skip

    with app_server(gzipped) as server:
        with BizagiClient(settings_for(server, max_response_bytes=4 * MiB)) as client:
            with PeakRss() as rss, pytest.raises(ResponseError) as caught:
                client.get_json(client.url("odata/data/cases"))
    assert caught.value.kind == "too_large"
    # inflated a piece at a time: not the 100 MiB, nor a 64 MiB piece from a 64 KiB read
    assert rss.growth < 40 * MiB, rss.growth / MiB


def test_an_error_answer_is_read_only_in_part():
    sent = Sent()

    async def failing(_: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"code": "500", "message": "It broke.", "padding": "'
            async for piece in sent.stream(200 * MiB):
                yield piece

        return StreamingResponse(body(), status_code=500, media_type="application/json")

    with app_server(failing) as server:
        with BizagiClient(settings_for(server)) as client:
            began = time.monotonic()
            with pytest.raises(ServerError) as caught:
                client.get_json(client.url("odata/data/cases"))
            took = time.monotonic() - began
        time.sleep(0.3)
    assert caught.value.status == 500
    assert caught.value.body.startswith('{"code": "500", "message": "It broke."')
    assert sent.bytes < 24 * MiB, sent.bytes
    assert took < 10, took


def test_a_huge_token_answer_is_refused():
    sent = Sent()

    async def data(_: Request) -> Response:
        return JSONResponse({"value": []})

    async def token(_: Request) -> Response:
        return StreamingResponse(sent.stream(200 * MiB), media_type="application/json")

    with app_server(data, token) as server:
        with BizagiClient(settings_for(server)) as client:
            with pytest.raises(ResponseError) as caught:
                client.get_json(client.url("odata/data/cases"))
        time.sleep(0.3)
    assert caught.value.kind == "too_large"
    assert "token answer" in str(caught.value)
    assert "BIZAGI_TOKEN_URL" in str(caught.value)
    assert sent.bytes < 24 * MiB, sent.bytes


def test_a_page_of_a_thousand_cases_is_far_below_the_default_limit(small_server):
    settings = BizagiSettings(base_url=small_server.base_url, client_id=small_server.client_id,
                              client_secret=small_server.client_secret)  # fmt: skip
    stats = RequestStats()
    with BizagiClient(settings) as client:
        url = client.url("odata/data/casesWithWorkitems", {"$top": 1000})
        page = client.get_json(url, stats)
    per_row = stats.bytes / max(1, len(page["value"]))
    assert 1000 * per_row * 20 < settings.max_response_bytes, per_row


# -- echoed secrets ----------------------------------------------------------------------------


class Echo:
    """A hostile server that echoes whatever credentials it is sent: the token endpoint (the
    form, the Authorization header and the decoded secret, in ``error_description`` and in
    headers) and the OData endpoint (every bearer token it has seen, in its error and a header).
    Tokens are short (13 characters), so masking of long token-like runs cannot catch them."""

    def __init__(self, *, refuse_token: bool) -> None:
        self.refuse_token = refuse_token
        self.issued: list[str] = []
        self.bearers: list[str] = []

    async def token(self, request: Request) -> Response:
        form, auth, secret = await presented_credentials(request)
        headers = {"X-Echo-Authorization": auth, "X-Echo-Secret": secret,
                   "Location": f"https://elsewhere.example/login/{secret}"}  # fmt: skip
        if self.refuse_token:
            description = f"client secret {secret!r} is wrong; form {form}; Authorization {auth}"
            return JSONResponse({"error": "invalid_client", "error_description": description,
                                 "http_status_code": 401}, 401, headers=headers)  # fmt: skip
        token = f"tok-{len(self.issued):04d}-ab1c"
        self.issued.append(token)
        return JSONResponse(token_body(token), headers=headers)

    async def data(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.bearers.append(bearer)
        seen = ", ".join(self.bearers)
        body = {"error": {"code": "401", "message": f"tokens {seen} are revoked",
                          "details": [{"message": f"last was Bearer {bearer}"}]}}  # fmt: skip
        return JSONResponse(
            body,
            401,
            headers={
                "X-Echo-Bearer": seen,
                "WWW-Authenticate": f'Bearer error="invalid_token" token="{bearer}"',
            },
        )

    @contextmanager
    def running(self) -> Iterator[AsgiServer]:
        with app_server(self.data, self.token) as server:
            yield server


SECRETS = [
    pytest.param("Xq7-never-print-me-Zt9", id="ordinary"),
    pytest.param("Zt9q", id="four-characters"),
    pytest.param('pa ss/wörd"&=+\\', id="url-and-json-special"),
]


def forbidden(secret: str, echo: Echo, client_id: str = TINY_CLIENT_ID) -> list[str]:
    return [secret, basic_credentials(client_id, secret), *echo.issued]


def assert_clean(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret.lower() not in text.lower(), (secret, text)


def error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error)]
    texts += [getattr(error, name) for name in ("body", "url") if hasattr(error, name)]
    return texts


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_token_endpoint_that_echoes_the_secret_is_not_repeated(secret, method, caplog):
    caplog.set_level(logging.DEBUG)
    echo = Echo(refuse_token=True)
    with echo.running() as server:
        settings = tiny_settings(server, client_secret=secret, auth_method=method)
        with BizagiClient(settings) as client, pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/cases"))
    error = caught.value
    assert error.status == 401
    assert "invalid_client" in str(error)
    assert "is wrong" in str(error)  # the server's explanation stays, without the secret
    assert_clean([*error_texts(error), caplog.text, *(r.getMessage() for r in caplog.records)],
                 forbidden(secret, echo))  # fmt: skip


@pytest.mark.parametrize("secret", SECRETS)
def test_an_odata_endpoint_that_echoes_every_token_is_not_repeated(secret, caplog):
    caplog.set_level(logging.DEBUG)
    echo = Echo(refuse_token=False)
    with echo.running() as server:
        settings = tiny_settings(server, client_secret=secret)
        with BizagiClient(settings) as client, pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/cases"))
        assert client.auth.refreshes == 2
    assert len(echo.issued) == 2  # the current token and the one before it
    assert "revoked" in str(caught.value)
    texts = [*error_texts(caught.value), caplog.text, *(r.getMessage() for r in caplog.records)]
    assert any("x-echo-bearer" in t.lower() for t in texts)  # the echoing headers were logged
    assert_clean(texts, forbidden(secret, echo))


def test_a_bearer_token_app_whose_short_secret_is_echoed():
    echo = Echo(refuse_token=False)
    with echo.running() as server:
        settings = tiny_settings(server, auth_method="bearer_token", client_secret="b7Tk")
        with BizagiClient(settings) as client, pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/cases"))
    assert echo.bearers == ["b7Tk"]
    assert_clean(error_texts(caught.value), ["b7Tk"])


def cli_env(server: AsgiServer, secret: str, tmp_path: Any, **more: str) -> dict[str, str]:
    env = {k: "" for k in os.environ if k.startswith("BIZAGI_")}
    return env | {
        "BIZAGI_BASE_URL": server.base_url,
        "BIZAGI_CLIENT_ID": TINY_CLIENT_ID,
        "BIZAGI_CLIENT_SECRET": secret,
        "BIZAGI_MAX_RETRIES": "0",
        "BIZAGI_LAKE": str(tmp_path / "lake"),
        "BIZAGI_WAREHOUSE": str(tmp_path / "w.duckdb"),
        **more,
    }


COMMANDS = [
    pytest.param(["check"], id="check"),
    pytest.param(
        ["extract", "cases", "--start", "2025-01-01", "--end", "2025-01-02", "--no-load"],
        id="extract",
    ),
]


@pytest.mark.parametrize("refuse_token", [True, False], ids=["token-echo", "odata-echo"])
@pytest.mark.parametrize("command", COMMANDS)
def test_the_cli_never_shows_an_echoed_secret(command, refuse_token, tmp_path):
    secret = "Zt9q-cli"
    echo = Echo(refuse_token=refuse_token)
    with echo.running() as server:
        result = CliRunner().invoke(main, command, env=cli_env(server, secret, tmp_path))
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stderr
    assert_clean([result.output, result.stderr, result.stdout], forbidden(secret, echo))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_debug_run_of_the_cli_logs_and_raises_no_echoed_secret(command, tmp_path):
    """BIZAGI_LOG_LEVEL=DEBUG in a real process: httpx and httpcore log every request and the
    response headers (which echo the token and the secret), and extract prints the traceback."""
    secret = "Zt9q-debug"
    echo = Echo(refuse_token=False)
    with echo.running() as server:
        env = {**os.environ, **cli_env(server, secret, tmp_path, BIZAGI_LOG_LEVEL="DEBUG")}
        run = subprocess.run([sys.executable, "-m", "bizagi_etl.cli", *command], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode != 0
    shown = run.stdout + run.stderr
    assert "receive_response_headers" in shown  # httpcore's debug lines were on
    assert "revoked" in shown  # the failure itself is shown (one line, or a traceback)
    assert_clean([shown], forbidden(secret, echo))


# -- the redactor itself -----------------------------------------------------------------------


def test_every_form_of_a_secret_is_removed_and_ordinary_text_is_kept():
    secret = 'pa ss/wörd"&=+\\'
    redactor = Redactor([secret])
    forms = [secret, "pa%20ss/w%C3%B6rd%22%26%3D%2B%5C", "pa+ss%2Fw%C3%B6rd%22%26%3D%2B%5C",
             r"pa ss/w\u00f6rd\"&=+\\", "PA SS/WÖRD\"&=+\\",
             base64.b64encode(secret.encode()).decode()]  # fmt: skip
    for form in forms:
        assert redactor.scrub(f"before {form} after") == "before *** after", form
    assert redactor.scrub("nothing to hide here") == "nothing to hide here"


def test_a_secret_shorter_than_four_characters_is_removed_only_as_a_credential(caplog):
    with caplog.at_level(logging.WARNING):
        BizagiAuth(BizagiSettings(base_url="https://h.example", client_id="c", client_secret="s1"))
    assert "fewer than 4 characters" in caplog.text
    redactor = Redactor(["s1"])
    assert redactor.scrub("grant&client_secret=s1&scope=api") == "grant&client_secret=***&scope=api"
    assert redactor.scrub('{"client_secret": "s1"}') == '{"client_secret": "***"}'
    assert redactor.scrub("Authorization: Bearer s1") == "Authorization: Bearer ***"
    assert redactor.scrub("cases1 s1s") == "cases1 s1s"  # free text is left alone


def test_a_cut_never_leaves_the_start_of_a_secret():
    redactor = Redactor(["Xq7-never-print-me-Zt9"])
    assert redactor.scrub_tail("the secret was Xq7-never-pr") == "the secret was ***"
    assert redactor.scrub_tail("nothing at the end.") == "nothing at the end."
    assert scrub("ends with Xq7-never-print-me-Zt9") == "ends with ***"


def test_tokens_held_are_remembered_and_redactors_leave_with_their_client():
    redactor = Redactor(["k3y-value"])
    for n in range(3):
        redactor.add_token(f"tok-{n}-held")
    assert redactor.scrub("tok-0-held tok-2-held") == "*** ***"
    del redactor
    assert scrub("tok-0-held") == "tok-0-held"


def test_log_records_formed_without_scrubbing_are_scrubbed(caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Qm4-in-a-log-line"
    settings = BizagiSettings(base_url="https://h.example", client_id="c", client_secret=secret)
    with BizagiClient(settings):
        logging.getLogger("bizagi_etl.connector.paging").info("next link %s", f"?t={secret}")
        logging.getLogger("httpcore.http11").debug("headers [(b'x', b'%s')]", secret)
    assert "next link ?t=***" in caplog.text
    assert secret not in caplog.text


def test_an_error_raised_outside_the_client_is_scrubbed_as_it_leaves_it():
    secret = "Lv8-outside"
    settings = BizagiSettings(base_url="https://h.example", client_id="c", client_secret=secret)
    with pytest.raises(BizagiError) as caught, BizagiClient(settings):
        raise BizagiError(f"a page echoed {secret}")
    assert str(caught.value) == "a page echoed ***"


def test_the_tiny_secret_never_shows_in_a_debug_run(caplog):
    """The shared tiny app, at DEBUG: request and response lines carry no secret or token."""
    caplog.set_level(logging.DEBUG)

    def ok(_: Request) -> Response:
        return JSONResponse({"value": []}, headers={"X-Token-Echo": TINY_SECRET})

    with tiny(ok) as (server, _seen), BizagiClient(tiny_settings(server)) as client:
        client.get_json(client.url("odata/data/cases"))
        token = client.auth.token
    assert token is not None
    assert TINY_SECRET not in caplog.text
    assert token.value not in caplog.text


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # with the zlib header, as the RFC says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw DEFLATE, as servers send too
    ],
)
def test_compressed_answers_still_decode(encoding, compress):
    payload = b'{"value": [' + b", ".join(b"%d" % i for i in range(50_000)) + b"]}"

    async def compressed(_: Request) -> Response:
        return Response(compress(payload), media_type="application/json",
                        headers={"Content-Encoding": encoding})  # fmt: skip

    stats = RequestStats()
    with app_server(compressed) as server, BizagiClient(settings_for(server)) as client:
        answer = client.get_json(client.url("odata/data/cases"), stats)
    assert answer["value"] == list(range(50_000))
    assert stats.bytes == len(payload)


def test_a_body_that_does_not_decode_is_garbled_and_retried():
    calls = 0

    async def broken(_: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(b"not gzip at all", media_type="application/json",
                        headers={"Content-Encoding": "gzip"})  # fmt: skip

    with app_server(broken) as server:
        stats = RequestStats()
        with BizagiClient(settings_for(server, max_retries=1), sleep=lambda _: None) as client:
            with pytest.raises(ResponseError) as caught:
                client.get_json(client.url("odata/data/cases"), stats)
    assert caught.value.kind == "garbled"
    assert caught.value.retriable
    assert calls == 2
    assert stats.retries["garbled"] == 1


def test_a_silent_server_names_the_read_timeout():
    async def silent(_: Request) -> Response:
        await asyncio.sleep(1)
        return JSONResponse({"value": []})

    with app_server(silent) as server:
        with BizagiClient(settings_for(server, read_timeout=0.3)) as client:
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/cases"))
    assert caught.value.kind == "timeout"
    assert "sent nothing for 0.3 s (BIZAGI_READ_TIMEOUT)" in str(caught.value)
