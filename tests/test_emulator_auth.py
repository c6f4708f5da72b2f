"""The token endpoint and bearer checks, as Bizagi answers them (reference §2, §6.1-6.2)."""

from __future__ import annotations

import base64
import re
import time

import httpx
import pytest

from bizagi_etl.emulator.tokens import TokenStore

FORM = {"grant_type": "client_credentials", "scope": "api"}


def _flat_error(response: httpx.Response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status
    assert body["code"] == str(status)
    assert body["type"] == "ODataException"
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize("path", ["/oauth2/server/token", "/oauth2/server/token/"])
def test_token_has_bizagis_shape(small_server, path):
    response = httpx.post(
        small_server.base_url + path,
        auth=(small_server.client_id, small_server.client_secret),
        data=FORM,
    )
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{64}", body["access_token"])
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == small_server.config.token_ttl
    assert body["scope"] == "api openid"
    assert body["http_status_code"] == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "http_status_code"}


def test_each_token_is_new(small_server):
    from conftest import token_for

    assert token_for(small_server) != token_for(small_server)


@pytest.mark.parametrize(
    ("auth", "form", "status", "error"),
    [
        (("bizagi-etl-demo", "wrong"), FORM, 401, "invalid_client"),
        (("someone-else", "emulator-secret-change-me"), FORM, 401, "invalid_client"),
        (None, FORM, 401, "invalid_client"),
        (("bizagi-etl-demo", "emulator-secret-change-me"), {"grant_type": "password"}, 400,
         "unsupported_grant_type"),
        (("bizagi-etl-demo", "emulator-secret-change-me"), {"scope": "api"}, 400,
         "invalid_request"),
        (("bizagi-etl-demo", "emulator-secret-change-me"),
         {"grant_type": "client_credentials", "scope": "usersync"}, 400, "invalid_scope"),
        (("bizagi-etl-demo", "emulator-secret-change-me"),
         {"grant_type": "client_credentials"}, 400, "invalid_scope"),
    ],
)  # fmt: skip
def test_token_errors_use_the_oauth_body(small_server, auth, form, status, error):
    response = httpx.post(small_server.token_url, auth=auth, data=form)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["http_status_code"] == status
    assert body["error_description"]
    assert "Traceback" not in response.text
    assert small_server.client_secret not in response.text


def test_secret_in_the_form_is_not_bizagis_way(small_server):
    form = {
        **FORM,
        "client_id": small_server.client_id,
        "client_secret": small_server.client_secret,
    }
    response = httpx.post(small_server.token_url, data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_malformed_basic_header_is_refused(small_server):
    response = httpx.post(
        small_server.token_url, headers={"Authorization": "Basic %%%not-base64"}, data=FORM
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_body_must_be_a_form(small_server):
    raw = f"{small_server.client_id}:{small_server.client_secret}".encode()
    response = httpx.post(
        small_server.token_url,
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
        json=FORM,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token_errors_can_come_with_http_200(make_server):
    with make_server(token_errors_as_200=True) as server:
        response = httpx.post(server.token_url, auth=(server.client_id, "wrong"), data=FORM)
    assert response.status_code == 200
    assert response.json()["http_status_code"] == 401
    assert response.json()["error"] == "invalid_client"


def test_allowed_scopes_are_configurable(make_server):
    with make_server(scopes=("api", "usersync")) as server:
        form = {"grant_type": "client_credentials", "scope": "api usersync"}
        response = httpx.post(
            server.token_url, auth=(server.client_id, server.client_secret), data=form
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
     {"Authorization": "Bearer " + "0" * 64}],
)  # fmt: skip
def test_odata_needs_a_known_bearer_token(small_server, headers):
    response = httpx.get(small_server.base_url + "/odata/data/processes", headers=headers)
    body = _flat_error(response, 401)
    assert body["status"] == "Unauthorized"
    assert body["message"]


@pytest.mark.parametrize(
    "path", ["/odata/data", "/odata/data/$metadata", "/odata/metadata/getProject",
             "/odata/data/cases(1001)"],
)  # fmt: skip
def test_every_odata_path_needs_the_token(small_server, path):
    _flat_error(httpx.get(small_server.base_url + path), 401)


def test_expired_token_gets_401_and_a_new_one_works(make_server):
    from conftest import token_for

    with make_server(token_ttl=1) as server:
        token = token_for(server)
        url = server.base_url + "/odata/data/userProfile"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url, headers=headers).status_code == 200
        time.sleep(1.2)
        body = _flat_error(httpx.get(url, headers=headers), 401)
        assert "expired" in body["message"]
        fresh = {"Authorization": f"Bearer {token_for(server)}"}
        assert httpx.get(url, headers=fresh).status_code == 200


def test_ttl_zero_announces_zero_and_never_expires():
    now = [1000.0]
    store = TokenStore(ttl=0, clock=lambda: now[0])
    token = store.issue()
    now[0] += 10**9
    assert store.problem(token) is None


def test_ttl_expires_exactly_at_its_end():
    now = [0.0]
    store = TokenStore(ttl=60, clock=lambda: now[0])
    token = store.issue()
    now[0] = 59.9
    assert store.problem(token) is None
    now[0] = 60.0
    assert store.problem(token) == "The access token has expired."
    assert store.problem("f" * 64) == "The access token is not valid."


def test_ttl_zero_token_endpoint_says_zero(make_server):
    with make_server(token_ttl=0) as server:
        response = httpx.post(
            server.token_url, auth=(server.client_id, server.client_secret), data=FORM
        )
    assert response.json()["expires_in"] == 0
