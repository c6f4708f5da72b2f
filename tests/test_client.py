"""BizagiClient against real servers on loopback: the emulator's bad-day switches, and tiny apps
for what the emulator never does (HTML login pages, redirects, 500s, a header recorder).

Waits are observed through a recording ``sleep``, never slept: a recorded wait is what the
client would have slept.
"""

from __future__ import annotations

import email.utils
import logging
import re
import socket
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from conftest import TINY_CLIENT_ID, TINY_SECRET, TINY_TOKEN, Seen, tiny, tiny_settings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bizagi_etl.connector.client import BizagiClient, RequestStats
from bizagi_etl.connector.errors import (
    AuthError,
    BizagiError,
    ClientError,
    ResponseError,
    ServerError,
    TransportError,
)
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.emulator.server import EmulatorServer

CLIENT_ID = TINY_CLIENT_ID
SECRET = TINY_SECRET
TOKEN = TINY_TOKEN
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
NO_SUCH_PROCESS = "00000000-0000-4000-8000-000000000000"


class Sleeps:
    """A ``sleep=`` that records instead of sleeping, with how many requests came before."""

    def __init__(self, stats: RequestStats | None = None) -> None:
        self.stats = stats
        self.calls: list[tuple[int, float]] = []  # (requests sent so far, seconds)

    def __call__(self, seconds: float) -> None:
        self.calls.append((self.stats.requests if self.stats else -1, seconds))

    @property
    def seconds(self) -> list[float]:
        return [s for _, s in self.calls]

    def first_after(self, requests: int) -> float:
        """The first wait recorded after ``requests`` requests."""
        return next(s for n, s in self.calls if n == requests)


def server_settings(server: EmulatorServer, **changes: Any) -> BizagiSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    return BizagiSettings(**(values | changes))


def data_requests(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.path != "/oauth2/server/token"]


def odata_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"code": str(status), "type": "ODataException", "status": "x", "message": message}
    return JSONResponse(body, status, headers=headers)


# -- retries -----------------------------------------------------------------------------------


def test_throttling_is_retried_after_retry_after_then_given_up(make_server):
    with make_server(fault_rate=1.0, retry_after=3) as server:
        stats = RequestStats()
        sleeps = Sleeps(stats)
        client = BizagiClient(server_settings(server, max_retries=2), sleep=sleeps)
        with client, pytest.raises(ServerError) as caught:
            client.get_json(client.url("odata/data/processes"), stats)
        injected = Counter({k: v for k, v in server.injected.items() if k in ("429", "503")})
    assert caught.value.status in (429, 503)
    assert stats.requests == 3
    assert sum(injected.values()) == 3
    # Every throttle but the last was retried, and counted under its status.
    assert stats.retries + Counter({str(caught.value.status): 1}) == injected
    # Before each retry the client waited at least what the server asked: 3 s for a 429, an
    # HTTP date about 3-4 s ahead for a 503 (whole seconds, so allow a little below 3).
    for gap in (1, 2):
        assert sleeps.first_after(gap) >= 2.9
    assert all(n in (1, 2) for n, _ in sleeps.calls)  # no wait before the first request


def test_a_429_waits_exactly_what_retry_after_says():
    def throttle(_: Request) -> Response:
        return odata_error(429, "Too many requests.", {"Retry-After": "3"})

    with tiny(throttle) as (server, seen):
        stats = RequestStats()
        sleeps = Sleeps(stats)
        with BizagiClient(tiny_settings(server, max_retries=2), sleep=sleeps) as client:
            with pytest.raises(ServerError) as caught:
                client.get_json(client.url("odata/data/cases"), stats)
    assert caught.value.status == 429
    assert caught.value.retry_after == 3
    assert stats.requests == 3
    assert len(data_requests(seen)) == 3
    assert stats.retries == Counter({"429": 2})
    assert sleeps.first_after(1) >= 3
    assert sleeps.first_after(2) >= 3


def test_a_503_waits_until_its_http_date():
    def unavailable(_: Request) -> Response:
        when = email.utils.formatdate(int(time.time()) + 11, usegmt=True)  # >= 10 s ahead
        return odata_error(503, "The service is temporarily unavailable.", {"Retry-After": when})

    with tiny(unavailable) as (server, _seen):
        stats = RequestStats()
        sleeps = Sleeps(stats)
        with BizagiClient(tiny_settings(server, max_retries=1), sleep=sleeps) as client:
            with pytest.raises(ServerError) as caught:
                client.get_json(client.url("odata/data/cases"), stats)
    assert caught.value.status == 503
    assert stats.requests == 2
    assert stats.retries == Counter({"503": 1})
    # At least 10 s ahead when sent: far beyond any backoff jitter (<= 0.5 s here).
    assert sleeps.first_after(1) >= 9


def test_a_retry_after_beyond_the_budget_gives_up_without_waiting(make_server):
    with make_server(fault_rate=1.0, retry_after=3) as server:
        stats = RequestStats()
        sleeps = Sleeps(stats)
        settings = server_settings(server, max_retries=5, retry_budget=1.0)
        with BizagiClient(settings, sleep=sleeps) as client, pytest.raises(ServerError) as caught:
            client.get_json(client.url("odata/data/processes"), stats)
    assert caught.value.status in (429, 503)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 1.0
    assert stats.requests == 1
    assert sleeps.calls == []
    assert sum(stats.retries.values()) == 0


@pytest.mark.parametrize(
    ("switch", "injected_as", "reasons"),
    [
        ("fault_rate", ("429", "503"), {"429", "503"}),
        ("drop_rate", ("drop",), {"dropped"}),
        ("truncate_rate", ("truncate",), {"garbled"}),
    ],
)
def test_a_bad_day_is_retried_until_every_call_succeeds(make_server, switch, injected_as, reasons):
    with make_server(**{switch: 0.3, "retry_after": 0}) as server:
        stats = RequestStats()
        with BizagiClient(server_settings(server), sleep=Sleeps(stats)) as client:
            for skip in range(30):
                url = client.url("odata/data/cases", {"$top": 2, "$skip": skip})
                body = client.get_json(url, stats)
                assert len(body["value"]) == 2
        injected = sum(server.injected[k] for k in injected_as)
    assert injected > 0
    assert set(stats.retries) <= reasons
    assert set(stats.retries) & reasons
    # Each injected failure cost exactly one retry; nothing else was retried.
    assert sum(stats.retries.values()) == injected
    assert stats.requests == 30 + injected


# -- a throttle pauses everyone ----------------------------------------------------------------


def test_a_throttle_pauses_every_caller_of_the_client():
    answered = Counter[str]()

    def throttle_once(request: Request) -> Response:
        answered[request.url.path] += 1
        if sum(answered.values()) == 1:
            return odata_error(429, "Too many requests.", {"Retry-After": "3"})
        return JSONResponse({"value": []})

    with tiny(throttle_once) as (server, seen):
        waits: list[tuple[str, int, float]] = []  # (thread, data requests seen so far, seconds)

        def sleep(seconds: float) -> None:
            waits.append((threading.current_thread().name, len(data_requests(seen)), seconds))

        first = RequestStats()
        with BizagiClient(tiny_settings(server), sleep=sleep) as client:
            assert client.get_json(client.url("odata/data/cases"), first) == {"value": []}
            assert first.retries == Counter({"429": 1})
            # The client waited (as far as it knows, no time passed) and the pause still holds.
            assert client._pause_until - time.monotonic() > 2.0

            second = RequestStats()
            outcome: list[dict[str, Any]] = []
            caller = threading.Thread(
                target=lambda: outcome.append(
                    client.get_json(client.url("odata/data/processes"), second)
                ),
                name="other-caller",
            )
            caller.start()
            caller.join(timeout=30)
    assert outcome == [{"value": []}]
    # The other caller never met the throttle, yet waited out the pause before its request.
    other = [(before, seconds) for name, before, seconds in waits if name == "other-caller"]
    assert other
    requests_before, waited = other[0]
    assert requests_before == 2  # the first caller's two, none of its own yet
    assert waited > 2.0
    assert second.requests == 1
    assert second.retries == Counter()
    assert [s.path for s in data_requests(seen)] == [
        "/odata/data/cases", "/odata/data/cases", "/odata/data/processes",
    ]  # fmt: skip


# -- what is not retried -----------------------------------------------------------------------


def test_an_unknown_key_is_a_client_error_at_once(small_server):
    stats = RequestStats()
    sleeps = Sleeps(stats)
    with BizagiClient(server_settings(small_server), sleep=sleeps) as client:
        url = client.url(f"odata/data/processes({NO_SUCH_PROCESS})")
        with pytest.raises(ClientError) as caught:
            client.get_json(url, stats)
    message = str(caught.value)
    assert caught.value.status == 404
    assert stats.requests == 1
    assert sleeps.calls == []
    assert "GET" in message
    assert url in message
    assert "404" in message
    assert f"Resource not found for the segment 'processes({NO_SUCH_PROCESS})'" in message


def test_a_bad_filter_is_a_client_error_with_the_servers_explanation(small_server):
    stats = RequestStats()
    with BizagiClient(server_settings(small_server), sleep=Sleeps(stats)) as client:
        url = client.url("odata/data/cases", {"$filter": "nosuch eq 1"})
        with pytest.raises(ClientError) as caught:
            client.get_json(url, stats)
    assert caught.value.status == 400
    assert stats.requests == 1
    assert "has no property 'nosuch'" in str(caught.value)


def test_a_wrong_bearer_token_is_an_auth_error(small_server):
    stats = RequestStats()
    settings = server_settings(small_server, auth_method="bearer_token", client_secret="f" * 64)
    with BizagiClient(settings, sleep=Sleeps(stats)) as client:
        with pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/userProfile"), stats)
    assert caught.value.status == 401
    assert stats.requests == 1
    assert "denied" in str(caught.value)


def test_a_500_is_a_server_error_and_not_retried():
    def fail(_: Request) -> Response:
        return odata_error(500, "Entity metadata not found. Entity ID: -1.")

    with tiny(fail) as (server, seen):
        stats = RequestStats()
        sleeps = Sleeps(stats)
        with BizagiClient(tiny_settings(server), sleep=sleeps) as client:
            with pytest.raises(ServerError) as caught:
                client.get_json(client.url("odata/data/entities"), stats)
    assert caught.value.status == 500
    assert stats.requests == 1
    assert len(data_requests(seen)) == 1
    assert sleeps.calls == []
    assert "Entity metadata not found" in str(caught.value)


def test_an_html_login_page_is_a_response_error_and_not_retried():
    page = "<!DOCTYPE html><html><head><title>Bizagi - Sign in</title></head><body>" + (
        "<form action='/login' method='post'><input name='user'></form></body></html>"
    )

    def login(_: Request) -> Response:
        return Response(page, 200, media_type="text/html")

    with tiny(login) as (server, seen):
        stats = RequestStats()
        sleeps = Sleeps(stats)
        with BizagiClient(tiny_settings(server), sleep=sleeps) as client:
            with pytest.raises(ResponseError) as caught:
                client.get_json(client.url("odata/data/cases"), stats)
    message = str(caught.value)
    assert caught.value.status == 200
    assert caught.value.retriable is False
    assert stats.requests == 1
    assert len(data_requests(seen)) == 1
    assert sleeps.calls == []
    assert "HTML" in message
    assert "login page" in message


def test_a_redirect_is_not_followed():
    def elsewhere(_: Request) -> Response:
        return JSONResponse({"value": []})

    with tiny(elsewhere) as (away, away_seen):
        target = f"{away.base_url}/login?next=/odata"

        def redirect(_: Request) -> Response:
            return Response(status_code=302, headers={"Location": target})

        with tiny(redirect) as (home, home_seen):
            stats = RequestStats()
            with BizagiClient(tiny_settings(home), sleep=Sleeps(stats)) as client:
                with pytest.raises(ClientError) as caught:
                    client.get_json(client.url("odata/data/cases"), stats)
    assert caught.value.status == 302
    assert stats.requests == 1
    assert "redirect" in str(caught.value).lower()
    assert away.base_url in str(caught.value)
    assert len(data_requests(home_seen)) == 1
    assert away_seen == []  # nothing, and so no credentials, went there


# -- transport errors --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_a_refused_transport_error():
    settings = BizagiSettings(base_url=f"http://127.0.0.1:{free_port()}", client_id=CLIENT_ID,
                              client_secret=SECRET, max_retries=1)  # fmt: skip
    stats = RequestStats()
    with BizagiClient(settings, sleep=Sleeps(stats)) as client:
        url = client.url("odata/data/cases")
        with pytest.raises(TransportError) as caught:
            client.get_json(url, stats)
    assert caught.value.kind == "refused"
    assert caught.value.method == "GET"
    assert "refused" in str(caught.value)


def test_https_to_a_plain_http_port_is_a_tls_error(small_server):
    settings = server_settings(small_server, base_url=f"https://127.0.0.1:{small_server.port}")
    stats = RequestStats()
    sleeps = Sleeps(stats)
    with BizagiClient(settings, sleep=sleeps) as client, pytest.raises(TransportError) as caught:
        client.get_json(client.url("odata/data/cases"), stats)
    assert caught.value.kind == "tls"
    assert stats.requests == 1
    assert sleeps.calls == []


class UnknownHost(httpx.BaseTransport):
    """What httpx raises when a name does not resolve: ConnectError from socket.gaierror."""

    def __init__(self) -> None:
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from cause


def test_an_unknown_host_is_a_dns_error_and_not_retried():
    settings = BizagiSettings(base_url="https://dev-nobody.bizagi.invalid", client_id=CLIENT_ID,
                              client_secret=SECRET)  # fmt: skip
    transport = UnknownHost()
    stats = RequestStats()
    sleeps = Sleeps(stats)
    with BizagiClient(settings, transport=transport, sleep=sleeps) as client:
        with pytest.raises(TransportError) as caught:
            client.get_json(client.url("odata/data/cases"), stats)
    assert caught.value.kind == "dns"
    assert transport.calls == 1
    assert stats.requests == 1
    assert sleeps.calls == []
    assert "dev-nobody.bizagi.invalid" in str(caught.value)


# -- what goes on the wire ---------------------------------------------------------------------


def test_requests_say_who_they_are():
    def ok(_: Request) -> Response:
        return JSONResponse({"value": []})

    with tiny(ok) as (server, seen), BizagiClient(tiny_settings(server)) as client:
        client.get_json(client.url("odata/data/cases"))
    (request,) = data_requests(seen)
    assert request.headers["user-agent"].startswith("bizagi-etl/")
    assert request.headers["accept"] == (
        "application/json;odata.metadata=minimal;IEEE754Compatible=true"
    )  # exact decimals and int64 as strings
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_filter_with_plus_percent_and_quote_escapes_survives_double_decoding(small_server):
    with BizagiClient(server_settings(small_server)) as client:
        # '%27' decoded once too often would become a quote and end the literal early (a 400).
        tricky = "caseNumber eq 'A+B%27C%C'"
        body = client.get_json(client.url("odata/data/cases", {"$filter": tricky}))
        assert body["value"] == []
        assert body["@odata.totalCount"] == 0
        # And a real case number is found by the same road.
        number = client.get_json(client.url("odata/data/cases", {"$top": 1}))["value"][0][
            "caseNumber"
        ]
        url = client.url("odata/data/cases", {"$filter": f"caseNumber eq '{number}'"})
        assert [c["caseNumber"] for c in client.get_json(url)["value"]] == [number]


def test_search_by_case_number_paths_work(small_server):
    with BizagiClient(server_settings(small_server)) as client:
        number = client.get_json(client.url("odata/data/cases", {"$top": 1}))["value"][0][
            "caseNumber"
        ]
        found = client.get_json(client.url(f"odata/data/searchByCaseNumber(caseNumber='{number}')"))
        assert [c["caseNumber"] for c in found["value"]] == [number]
        none = client.get_json(client.url("odata/data/searchByCaseNumber(caseNumber='O''Hara-1')"))
        assert none["value"] == []


def test_url_takes_paths_not_absolute_urls(small_server):
    with BizagiClient(server_settings(small_server)) as client:
        assert client.url("/odata/data/cases") == f"{small_server.base_url}/odata/data/cases"
        with pytest.raises(ValueError, match="path"):
            client.url("https://elsewhere.example.com/odata/data/cases")


# -- nothing secret in messages or logs --------------------------------------------------------


def test_errors_and_debug_logs_never_show_the_secret_or_a_token(make_server, caplog):
    secret = "Sup3r-Secret-Never-Logged-4d1e"
    caplog.set_level(logging.DEBUG)
    errors: list[BizagiError] = []
    with make_server(client_secret=secret, fault_rate=0.3, retry_after=0) as server:
        with BizagiClient(server_settings(server), sleep=Sleeps()) as client:
            for skip in range(5):
                client.get_json(client.url("odata/data/cases", {"$top": 1, "$skip": skip}))
            for bad in (f"odata/data/processes({NO_SUCH_PROCESS})", "odata/data/nowhere"):
                with pytest.raises(ClientError) as caught:
                    client.get_json(client.url(bad))
                errors.append(caught.value)
            token = client.auth.token
            assert token is not None
        wrong = server_settings(server, client_secret=secret[::-1])
        with BizagiClient(wrong) as client, pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/cases"))
        errors.append(caught.value)
    shown = [caplog.text, *(r.getMessage() for r in caplog.records)]
    shown += [text for e in errors for text in (str(e), repr(e), e.body, e.url)]
    for text in shown:
        assert secret not in text
        assert secret[::-1] not in text
        assert token.value not in text
        assert not HEX64.search(text), text


def test_a_server_that_echoes_the_token_does_not_put_it_in_the_error():
    """Bizagi's message is quoted in the error, masked like the body excerpt is."""

    def echo(request: Request) -> Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        return odata_error(401, f"The access token {sent} has been revoked.")

    with tiny(echo) as (server, _seen), BizagiClient(tiny_settings(server)) as client:
        with pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/cases"))
    error = caught.value
    assert "revoked" in str(error)
    for text in (str(error), repr(error), error.body):
        assert TOKEN not in text
        assert not HEX64.search(text), text


def test_a_server_that_echoes_a_bearer_secret_does_not_put_it_in_the_error():
    secret = "7c" * 32  # a bearer-token app: the secret is the token (reference §2)

    def echo(request: Request) -> Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        return odata_error(401, f"The access token {sent} is not valid.")

    with tiny(echo) as (server, _seen):
        settings = tiny_settings(server, auth_method="bearer_token", client_secret=secret)
        with BizagiClient(settings) as client, pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/cases"))
    for text in (str(caught.value), repr(caught.value), caught.value.body):
        assert secret not in text
