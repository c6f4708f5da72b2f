"""Errors, tokens and encoding as other OData and OAuth2 servers send them, not only Bizagi:
each answer below is one a standard server gives, played by a transport (httpx's own way to
stand in for a server); the emulator's standard flavour covers the same end to end."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bizagi_etl.connector import (
    BizagiClient,
    BizagiSettings,
    ClientError,
    ServerError,
    iter_rows,
    odata,
)

BASE = "https://odata.example.com"
JWT = (
    ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "HS256", "typ": "JWT"}, {"sub": "etl", "exp": 4102444800})
    )
    + ".c2lnbmF0dXJl"
)


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], **settings: object
) -> BizagiClient:
    values = {"base_url": BASE, "client_id": "etl", "client_secret": "s3cret", "max_retries": 0,
              **settings}  # fmt: skip
    return BizagiClient(BizagiSettings(**values), transport=httpx.MockTransport(handler))


def token_answer(**body: object) -> httpx.Response:
    return httpx.Response(200, json={"access_token": JWT, "token_type": "Bearer",
                                     "expires_in": 3600, **body})  # fmt: skip


def rows(*ids: int) -> httpx.Response:
    return httpx.Response(200, json={"value": [{"id": i} for i in ids], "@odata.count": len(ids)})


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ({"code": "404", "type": "ODataException", "status": "NotFound",
          "message": "Entity not found.\nKey: 7"}, "[404] Entity not found. Key: 7"),
        ({"error": {"code": "BadRequest", "message": "The query\tis invalid.",
                    "details": [{"code": "x", "message": "Unknown property 'foo'."}]}},
         "[BadRequest] The query is invalid. (Unknown property 'foo'.)"),
        ({"error": {"code": "", "message": "Nope"}}, ": Nope"),
    ],
)  # fmt: skip
def test_flat_and_nested_error_bodies_give_one_clean_line(body, line):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return token_answer()
        return httpx.Response(400 if "error" in body else 404, json=body)

    with client_for(handler) as client, pytest.raises(ClientError) as raised:
        client.get_json(client.url("odata/Claims"))
    message = str(raised.value)
    assert line in message
    assert "\n" not in message
    assert "\t" not in message


def test_a_server_error_body_in_the_standard_shape_is_read_too():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return token_answer()
        return httpx.Response(500, json={"error": {"code": "Internal", "message": "boom"}})

    with client_for(handler) as client, pytest.raises(ServerError, match=r"\[Internal\] boom"):
        client.get_json(client.url("odata/Claims"))


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
@pytest.mark.parametrize("expires_in", [3600, "3600", 3600.0])
@pytest.mark.parametrize("token", [JWT, "a" * 64])
def test_tokens_of_any_case_shape_and_lifetime_type(token_type, expires_in, token):
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": token, "token_type": token_type,
                                             "expires_in": expires_in})  # fmt: skip
        sent.append(request.headers["authorization"])
        return rows(1)

    with client_for(handler) as client:
        assert [r["id"] for r in iter_rows(client, "odata/Claims")] == [1]
        assert client.auth.token is not None
        assert client.auth.token.lifetime == 3600
    assert sent[0] == f"Bearer {token}"


def test_a_401_with_invalid_token_refreshes_the_token_once_and_replays():
    tokens = iter(["first-token", "second-token"])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": next(tokens), "token_type": "Bearer",
                                             "expires_in": 3600})  # fmt: skip
        seen.append(request.headers["authorization"])
        if request.headers["authorization"] == "Bearer first-token":
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                         'error_description="The access token expired"'},
                json={"error": {"code": "Unauthorized", "message": "expired"}},
            )  # fmt: skip
        return rows(1, 2)

    with client_for(handler) as client:
        assert [r["id"] for r in iter_rows(client, "odata/Claims")] == [1, 2]
        assert client.auth.refreshes == 2
    assert seen == ["Bearer first-token", "Bearer second-token"]


def test_a_401_that_persists_after_one_refresh_is_an_auth_error_not_a_loop():
    requests = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return token_answer()
        requests.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                              json={"error": {"code": "401", "message": "no"}})  # fmt: skip

    with client_for(handler) as client, pytest.raises(Exception, match="HTTP 401"):
        client.get_json(client.url("odata/Claims"))
    assert len(requests) == 2


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("standard", "name eq 'a+b c' and creationDate ge 2025-01-01T00:00:00Z"),
        ("bizagi", "name eq 'a%2Bb c' and creationDate ge 2025-01-01T00:00:00Z"),
    ],
)
def test_filters_are_encoded_once_for_standard_servers_and_twice_for_bizagi(encoding, expected):
    import datetime as dt

    raw: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return token_answer()
        raw.append(request.url.query.decode())
        return rows()

    text = odata.all_of(
        odata.compare("name", "eq", "a+b c"),
        odata.compare("creationDate", "ge", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
    )
    with client_for(handler, filter_encoding=encoding) as client:
        list(iter_rows(client, "odata/Claims", filter=text))
    query = raw[0]
    assert "+" not in query  # a space is %20, a plus is encoded: no server can misread it
    decoded_once = parse_qs(query)["$filter"][0]
    assert decoded_once == expected


def test_get_bytes_fetches_xml_with_its_own_accept_header():
    accepts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return token_answer()
        accepts.append(request.headers["accept"])
        if urlsplit(str(request.url)).path.endswith("$metadata"):
            return httpx.Response(200, content=b"<edmx:Edmx/>",
                                  headers={"content-type": "application/xml"})  # fmt: skip
        return httpx.Response(404, json={"error": {"code": "NotFound", "message": "none"}})

    with client_for(handler) as client:
        assert client.get_bytes(client.url("odata/$metadata"), "application/xml") == (
            b"<edmx:Edmx/>"
        )
        with pytest.raises(ClientError, match=r"HTTP 404.*\[NotFound\] none"):
            client.get_bytes(client.url("odata/nothing"), "application/xml")
    assert accepts[0] == "application/xml"
