"""BizagiAuth: the OAuth2 flow driven by hand (as httpx's own tests do), then end to end.

Reference §2: the token request is a POST with HTTP Basic credentials and the form
``grant_type=client_credentials&scope=api``; Bizagi answers lower-case ``bearer``, its own
``http_status_code`` (errors may come with HTTP 200) and an ``expires_in`` that may be huge, 0
(never expires) or missing. Bearer-token apps send the secret itself as the token.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from conftest import TINY_CLIENT_ID, TINY_SECRET, TINY_TOKEN, tiny, token_for
from conftest import tiny_settings as shared_tiny_settings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bizagi_etl.connector.auth import BizagiAuth
from bizagi_etl.connector.client import BizagiClient
from bizagi_etl.connector.errors import AuthError, BizagiError, ResponseError, TransportError
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.emulator.server import AsgiServer, EmulatorServer

BASE = "https://dev-acme-corp.bizagi.com"
TOKEN_URL = f"{BASE}/oauth2/server/token"
CLIENT_ID = TINY_CLIENT_ID
SECRET = TINY_SECRET
TOKEN = TINY_TOKEN
OTHER_TOKEN = "9a" * 32
HEX64 = re.compile(r"[0-9a-f]{64}")
MISSING = object()


def hand_settings(**changes: Any) -> BizagiSettings:
    values: dict[str, Any] = {"base_url": BASE, "client_id": CLIENT_ID, "client_secret": SECRET}
    return BizagiSettings(**(values | changes))


def server_settings(server: EmulatorServer, **changes: Any) -> BizagiSettings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    return BizagiSettings(**(values | changes))


def data_request(url: str = f"{BASE}/odata/data/userProfile", **headers: str) -> httpx.Request:
    return httpx.Request("GET", url, headers=headers)


def token_answer(request: httpx.Request, status: int = 200, **fields: Any) -> httpx.Response:
    """Bizagi's token body (reference §2); a field set to MISSING is left out."""
    body: dict[str, Any] = {
        "access_token": TOKEN,
        "token_type": "bearer",
        "expires_in": 3600,
        "scope": "api openid",
        "http_status_code": 200,
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not MISSING}
    return httpx.Response(status, json=body, request=request)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


def form_of(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode("ascii"))


def authorised(auth: BizagiAuth, request: httpx.Request, **token_fields: Any) -> httpx.Request:
    """Run one flow through its token request; return the request as it goes out."""
    flow = auth.auth_flow(request)
    token_request = next(flow)
    assert str(token_request.url) == TOKEN_URL
    sent = flow.send(token_answer(token_request, **token_fields))
    flow.close()
    return sent


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the flow, by hand -------------------------------------------------------------------------


def test_the_first_step_is_bizagis_token_request():
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    assert token_request.method == "POST"
    assert str(token_request.url) == TOKEN_URL
    assert token_request.headers["Authorization"] == basic(CLIENT_ID, SECRET)
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form_of(token_request) == {"grant_type": ["client_credentials"], "scope": ["api"]}
    flow.close()


def test_after_the_token_the_original_request_goes_out_with_it():
    auth = BizagiAuth(hand_settings())
    request = data_request()
    flow = auth.auth_flow(request)
    token_request = next(flow)
    sent = flow.send(token_answer(token_request))
    assert sent is request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200, json={}, request=sent))
    assert auth.refreshes == 1
    # The next request reuses the cached token: its first step is the request itself.
    second = data_request(f"{BASE}/odata/data/processes")
    flow = auth.auth_flow(second)
    assert next(flow) is second
    assert second.headers["Authorization"] == f"Bearer {TOKEN}"
    assert auth.refreshes == 1
    flow.close()


def test_a_401_fetches_a_new_token_once_and_replays():
    auth = BizagiAuth(hand_settings())
    request = data_request()
    flow = auth.auth_flow(request)
    sent = flow.send(token_answer(next(flow), access_token=TOKEN))
    again = flow.send(httpx.Response(401, request=sent))
    assert again.method == "POST"
    assert str(again.url) == TOKEN_URL
    replay = flow.send(token_answer(again, access_token=OTHER_TOKEN))
    assert replay is request
    assert replay.headers["Authorization"] == f"Bearer {OTHER_TOKEN}"
    # A second 401 is the answer: the flow ends, no third token, no loop.
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(401, request=replay))
    assert auth.refreshes == 2


def test_a_success_after_the_token_ends_the_flow_without_refreshing():
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    sent = flow.send(token_answer(next(flow)))
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(403, request=sent))  # only a 401 means "token refused"
    assert auth.refreshes == 1


# -- Bizagi's token answers --------------------------------------------------------------------


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
def test_bearer_in_any_case_is_accepted(token_type):
    auth = BizagiAuth(hand_settings())
    sent = authorised(auth, data_request(), token_type=token_type)
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert auth.token is not None
    assert auth.token.value == TOKEN


@pytest.mark.parametrize("token_type", ["mac", "Basic", "pop"])
def test_a_token_type_other_than_bearer_is_refused(token_type):
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    with pytest.raises(AuthError) as caught:
        flow.send(token_answer(token_request, token_type=token_type))
    assert token_type in str(caught.value)
    assert auth.token is None


def test_an_error_inside_an_http_200_body_is_an_auth_error():
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    body = {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
        "http_status_code": 401,
    }
    with pytest.raises(AuthError) as caught:
        flow.send(httpx.Response(200, json=body, request=token_request))
    assert caught.value.status == 401
    assert "invalid_client" in str(caught.value)
    assert auth.token is None


def test_http_status_code_401_alone_in_a_200_body_is_an_auth_error():
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    with pytest.raises(AuthError) as caught:
        flow.send(token_answer(token_request, http_status_code=401))
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, "invalid_client"), (400, "invalid_scope"), (400, "unsupported_grant_type")],
)
def test_an_oauth_error_body_names_the_error(status, error):
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    body = {"error": error, "error_description": "refused by the test", "http_status_code": status}
    with pytest.raises(AuthError) as caught:
        flow.send(httpx.Response(status, json=body, request=token_request))
    assert caught.value.status == status
    assert error in str(caught.value)
    assert "POST" in str(caught.value)
    assert TOKEN_URL in str(caught.value)


def test_a_huge_expires_in_is_a_long_lifetime():
    clock = Clock()
    auth = BizagiAuth(hand_settings(), clock=clock)
    authorised(auth, data_request(), expires_in=1_073_001_600)  # ~34 years, reference §2
    assert auth.token is not None
    assert auth.token.lifetime == 1_073_001_600
    assert auth.token.expires_at == 1000.0 + 1_073_001_600
    clock.now += 10 * 365 * 86_400  # ten years on: still the same token
    request = data_request()
    flow = auth.auth_flow(request)
    assert next(flow) is request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    flow.close()


@pytest.mark.parametrize("expires_in", [0, MISSING], ids=["zero", "missing"])
def test_zero_or_missing_expires_in_never_expires(expires_in):
    clock = Clock()
    auth = BizagiAuth(hand_settings(), clock=clock)
    authorised(auth, data_request(), expires_in=expires_in)
    assert auth.token is not None
    assert auth.token.lifetime is None
    assert auth.token.expires_at is None
    clock.now += 1e12
    request = data_request()
    flow = auth.auth_flow(request)
    assert next(flow) is request
    assert auth.refreshes == 1
    flow.close()


def test_an_html_token_answer_is_a_response_error():
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form></form></body>"
    with pytest.raises(ResponseError) as caught:
        flow.send(httpx.Response(200, html=page, request=token_request))
    assert "HTML" in str(caught.value)
    assert caught.value.retriable is False
    assert auth.token is None


# -- refreshing ahead of expiry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "later", "refreshed"),
    [
        (100, 80, False),  # margin min(60, 10) = 10 s: at 80 s there are 20 s left
        (100, 95, True),  # 5 s left: inside the margin
        (1000, 930, False),  # margin min(60, 100) = 60 s: 70 s left
        (1000, 945, True),  # 55 s left
    ],
)
def test_the_token_is_refreshed_ahead_of_expiry(lifetime, later, refreshed):
    clock = Clock()
    auth = BizagiAuth(hand_settings(), clock=clock)
    authorised(auth, data_request(), expires_in=lifetime)
    clock.now += later
    request = data_request()
    flow = auth.auth_flow(request)
    first = next(flow)
    if refreshed:
        assert first.method == "POST"
        assert str(first.url) == TOKEN_URL
        sent = flow.send(token_answer(first, access_token=OTHER_TOKEN, expires_in=lifetime))
        assert sent.headers["Authorization"] == f"Bearer {OTHER_TOKEN}"
        assert auth.refreshes == 2
    else:
        assert first is request
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert auth.refreshes == 1
    flow.close()


# -- other methods -----------------------------------------------------------------------------


def test_client_secret_post_sends_the_secret_in_the_form_only():
    auth = BizagiAuth(hand_settings(auth_method="client_secret_post"))
    flow = auth.auth_flow(data_request())
    token_request = next(flow)
    assert "Authorization" not in token_request.headers
    assert form_of(token_request) == {
        "grant_type": ["client_credentials"],
        "scope": ["api"],
        "client_id": [CLIENT_ID],
        "client_secret": [SECRET],
    }
    sent = flow.send(token_answer(token_request))
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    flow.close()


def test_bearer_token_sends_the_secret_and_never_asks_for_a_token():
    auth = BizagiAuth(hand_settings(auth_method="bearer_token"))
    request = data_request()
    flow = auth.auth_flow(request)
    assert next(flow) is request
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    with pytest.raises(StopIteration):  # a 401 is final: there is nothing to refresh
        flow.send(httpx.Response(401, request=request))
    assert auth.refreshes == 0
    assert auth.token is None


# -- the Authorization header stays home -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/odata/data/cases",
        "http://dev-acme-corp.bizagi.com/odata/data/cases",  # same host, plain http
        "https://dev-acme-corp.bizagi.com:8443/odata/data/cases",  # same host, other port
        "https://acme-corp.bizagi.com/odata/data/cases",  # a sibling project
    ],
)
def test_another_origin_gets_no_authorization(url):
    auth = BizagiAuth(hand_settings())
    request = data_request(url, Authorization="Bearer leaked-by-the-caller")
    flow = auth.auth_flow(request)
    first = next(flow)
    assert first is request  # no token request either
    assert "Authorization" not in first.headers
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(401, request=first))
    assert auth.refreshes == 0


def test_the_same_origin_spelt_differently_is_still_home():
    auth = BizagiAuth(hand_settings())
    flow = auth.auth_flow(data_request("https://DEV-ACME-CORP.bizagi.com:443/odata/data/cases"))
    assert str(next(flow).url) == TOKEN_URL
    flow.close()


# -- nothing secret shows ----------------------------------------------------------------------


def test_reprs_never_show_the_secret_or_the_token():
    settings = hand_settings()
    auth = BizagiAuth(settings)
    authorised(auth, data_request())
    secret = settings.client_secret
    shown = [repr(auth), repr(settings), str(settings), str(secret), repr(secret), f"{secret}",
             repr(auth.token)]  # fmt: skip
    for text in shown:
        assert SECRET not in text
        assert TOKEN not in text
    assert settings.client_secret.reveal() == SECRET


def test_token_errors_never_show_the_secret_or_the_token():
    errors: list[BizagiError] = []
    answers = [
        httpx.Response(401, json={"error": "invalid_client", "http_status_code": 401}),
        httpx.Response(200, json={"error": "invalid_client", "http_status_code": 401}),
        httpx.Response(200, html="<html><body>Login</body></html>"),
        httpx.Response(502, text=f"upstream said {TOKEN}"),
        httpx.Response(200, text=f'{{"access_token": "{TOKEN}", "token_type": "bea'),
        httpx.Response(200, json={"access_token": TOKEN, "token_type": "mac"}),
    ]
    for answer in answers:
        auth = BizagiAuth(hand_settings())
        flow = auth.auth_flow(data_request())
        token_request = next(flow)
        answer.request = token_request
        with pytest.raises(BizagiError) as caught:
            flow.send(answer)
        errors.append(caught.value)
    for error in errors:
        for text in (str(error), repr(error), getattr(error, "body", ""), error.url):
            assert SECRET not in text
            assert TOKEN not in text


# -- end to end against the emulator -----------------------------------------------------------


def test_a_real_client_gets_and_reuses_one_token(make_server):
    with make_server() as server, BizagiClient(server_settings(server)) as client:
        profile = client.get_json(client.url("odata/data/userProfile"))
        assert "@odata.context" in profile
        client.get_json(client.url("odata/data/processes"))
        assert server.emulated is not None
        assert server.emulated.tokens.issued == 1
        assert client.auth.refreshes == 1
        assert client.auth.token is not None
        assert client.auth.token.lifetime == server.config.token_ttl


def test_a_token_the_server_forgot_is_refreshed_once_and_the_call_succeeds(make_server):
    with make_server() as server, BizagiClient(server_settings(server)) as client:
        client.get_json(client.url("odata/data/userProfile"))
        assert server.emulated is not None
        # Two hours on, as the server sees it: the client's cached token has expired there.
        server.emulated.tokens.clock = lambda: time.monotonic() + 7200
        client.get_json(client.url("odata/data/userProfile"))
        assert server.emulated.tokens.issued == 2
        assert client.auth.refreshes == 2


def test_client_secret_post_works_end_to_end(make_server):
    with make_server(accept_form_credentials=True) as server:
        settings = server_settings(server, auth_method="client_secret_post")
        with BizagiClient(settings) as client:
            assert client.get_json(client.url("odata/data/userProfile"))
            assert client.auth.refreshes == 1


def test_client_secret_post_is_refused_where_only_basic_is_accepted(small_server):
    settings = server_settings(small_server, auth_method="client_secret_post")
    with BizagiClient(settings) as client, pytest.raises(AuthError) as caught:
        client.get_json(client.url("odata/data/userProfile"))
    assert caught.value.status == 401
    assert "invalid_client" in str(caught.value)


def test_bearer_token_works_end_to_end_without_a_token_call(make_server):
    with make_server() as server:
        issued_by_hand = token_for(server)
        settings = server_settings(server, auth_method="bearer_token", client_secret=issued_by_hand)
        with BizagiClient(settings) as client:
            assert client.get_json(client.url("odata/data/userProfile"))
        assert server.emulated is not None
        assert server.emulated.tokens.issued == 1  # only the one issued by hand
        assert client.auth.refreshes == 0


@pytest.mark.parametrize("as_200", [False, True])
def test_a_wrong_secret_is_an_auth_error(make_server, as_200):
    with make_server(token_errors_as_200=as_200) as server:
        settings = server_settings(server, client_secret="not-the-secret")
        with BizagiClient(settings) as client, pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/userProfile"))
    assert caught.value.status == 401
    assert "invalid_client" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


def test_many_threads_share_one_token_fetch(make_server):
    with make_server() as server, BizagiClient(server_settings(server)) as client:
        url = client.url("odata/data/userProfile")
        start = threading.Barrier(8)

        def call(_: int) -> dict[str, Any]:
            start.wait(timeout=10)
            return client.get_json(url)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(call, range(8)))
        assert all("@odata.context" in a for a in answers)
        assert server.emulated is not None
        assert server.emulated.tokens.issued == 1
        assert client.auth.refreshes == 1


def test_short_lived_tokens_are_refreshed_and_calls_keep_succeeding(make_server):
    with make_server(token_ttl=1) as server, BizagiClient(server_settings(server)) as client:
        url = client.url("odata/data/userProfile")
        began = time.monotonic()
        answers = []
        while time.monotonic() - began < 2.5:
            answers.append(client.get_json(url))
            time.sleep(0.25)  # pacing the test, not the client
        assert len(answers) >= 5
        assert all("@odata.context" in a for a in answers)
        assert client.auth.refreshes > 1
        assert server.emulated is not None
        assert server.emulated.tokens.issued == client.auth.refreshes


# -- end to end against tiny apps --------------------------------------------------------------


def tiny_settings(server: AsgiServer, **changes: Any) -> BizagiSettings:
    return shared_tiny_settings(server, **({"max_retries": 0} | changes))


def test_a_second_401_reaches_the_caller_after_exactly_one_refresh():
    def refuse(_: Request) -> Response:
        return JSONResponse({"code": "401", "type": "ODataException", "status": "Unauthorized",
                             "message": "Authorization has been denied."}, 401)  # fmt: skip

    with tiny(refuse) as (server, seen), BizagiClient(tiny_settings(server)) as client:
        with pytest.raises(AuthError) as caught:
            client.get_json(client.url("odata/data/userProfile"))
        assert caught.value.status == 401
    assert [(s.method, s.path) for s in seen] == [
        ("POST", "/oauth2/server/token"),
        ("GET", "/odata/data/userProfile"),
        ("POST", "/oauth2/server/token"),
        ("GET", "/odata/data/userProfile"),
    ]
    assert seen[0].headers["authorization"] == basic(CLIENT_ID, SECRET)
    assert seen[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_no_authorization_reaches_another_origin_end_to_end():
    def ok(_: Request) -> Response:
        return JSONResponse({"value": []})

    with tiny(ok) as (home, home_seen), tiny(ok) as (away, away_seen):
        with BizagiClient(tiny_settings(home)) as client:
            client.get_json(client.url("odata/data/cases"))
            client.get_json(f"{away.base_url}/odata/data/cases")
            client.http.get(f"{away.base_url}/x", headers={"Authorization": f"Bearer {TOKEN}"})
    assert home_seen[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert [s.path for s in away_seen] == ["/odata/data/cases", "/x"]  # no token request there
    for request in away_seen:
        assert "authorization" not in request.headers


def test_a_token_request_that_hangs_times_out():
    """The token request is bounded by read_timeout like every other request."""

    def ok(_: Request) -> Response:
        return JSONResponse({"value": []})

    with tiny(ok, token_delay=2.0) as (server, seen):
        settings = tiny_settings(server, read_timeout=0.3, connect_timeout=0.3)
        with BizagiClient(settings, sleep=lambda _: None) as client:
            with pytest.raises(TransportError) as caught:
                client.get_json(client.url("odata/data/userProfile"))
    assert caught.value.kind == "timeout"
    assert [s.path for s in seen] == ["/oauth2/server/token"]


def test_a_failed_token_request_does_not_keep_the_token_lock():
    def ok(_: Request) -> Response:
        return JSONResponse({"value": []})

    with tiny(ok) as (server, _seen):
        refused = tiny_settings(server, client_secret=SECRET)
    # The server is gone now: the token request meets a refused connection.
    with BizagiClient(refused, sleep=lambda _: None) as client:
        with pytest.raises(TransportError) as caught:
            client.get_json(client.url("odata/data/userProfile"))
        assert caught.value.kind == "refused"
        # Checked with a timeout: a kept lock would hang the next call for ever.
        assert client.auth._lock.acquire(timeout=1)
        client.auth._lock.release()
        with pytest.raises(TransportError):
            client.get_json(client.url("odata/data/userProfile"))
