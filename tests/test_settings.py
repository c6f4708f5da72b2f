"""Settings validate where they are made, name what is wrong, and never show the secret."""

from __future__ import annotations

import pytest

from bizagi_etl.connector.errors import SettingsError
from bizagi_etl.connector.settings import ENV_VARS, BizagiSettings, Secret

SECRET = "sup3r-s3cret-value"
ENV = {
    "BIZAGI_BASE_URL": "https://dev-acme-corp.bizagi.com/",
    "BIZAGI_CLIENT_ID": "etl",
    "BIZAGI_CLIENT_SECRET": SECRET,
}


def test_defaults_and_derived_token_url():
    s = BizagiSettings(base_url="https://h.example/Project/", client_id="c", client_secret=SECRET)
    assert s.base_url == "https://h.example/Project"
    assert s.token_url == "https://h.example/Project/oauth2/server/token"
    assert s.scope == "api"
    assert s.auth_method == "client_secret_basic"
    assert s.verify_tls is True
    assert isinstance(s.client_secret, Secret)
    assert s.client_secret.reveal() == SECRET


def test_secret_never_shows():
    s = BizagiSettings(base_url="https://h.example", client_id="c", client_secret=SECRET)
    for text in (repr(s), str(s), repr(s.client_secret), str(s.client_secret), f"{s}"):
        assert SECRET not in text


def test_from_env_reads_every_variable(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        **ENV,
        "BIZAGI_TOKEN_URL": "https://login.example/token",
        "BIZAGI_SCOPE": "api usersync",
        "BIZAGI_AUTH_METHOD": "client_secret_post",
        "BIZAGI_PAGE_SIZE": "250",
        "BIZAGI_MAX_PAGES": "10",
        "BIZAGI_CONNECT_TIMEOUT": "2.5",
        "BIZAGI_READ_TIMEOUT": "30",
        "BIZAGI_MAX_RETRIES": "3",
        "BIZAGI_RETRY_BUDGET": "60",
        "BIZAGI_MAX_BACKOFF": "5",
        "BIZAGI_VERIFY_TLS": "false",
        "BIZAGI_CA_BUNDLE": str(bundle),
        "BIZAGI_ALLOW_HTTP": "no",
        "BIZAGI_MAX_CONCURRENCY": "8",
        "BIZAGI_FILTER_ENCODING": "standard",
        "BIZAGI_REQUEST_DEADLINE": "90",
        "BIZAGI_MAX_RESPONSE_BYTES": "1048576",
    }
    assert set(env) == set(ENV_VARS.values()), "every documented variable is exercised"
    s = BizagiSettings.from_env(env)
    assert s.base_url == "https://dev-acme-corp.bizagi.com"
    assert s.token_url == "https://login.example/token"
    assert s.scope == "api usersync"
    assert s.auth_method == "client_secret_post"
    assert (s.page_size, s.max_pages, s.max_retries, s.max_concurrency) == (250, 10, 3, 8)
    assert (s.connect_timeout, s.read_timeout, s.retry_budget, s.max_backoff) == (2.5, 30, 60, 5)
    assert s.verify_tls is False
    assert s.ca_bundle == bundle
    assert s.client_secret.reveal() == SECRET
    assert s.filter_encoding == "standard"
    assert (s.request_deadline, s.max_response_bytes) == (90, 1_048_576)


def test_page_size_is_automatic_unless_set_and_zero_lets_the_server_page():
    assert BizagiSettings.from_env(ENV).page_size is None
    assert BizagiSettings.from_env({**ENV, "BIZAGI_PAGE_SIZE": "0"}).page_size == 0


def test_keyword_overrides_win_over_the_environment():
    s = BizagiSettings.from_env({**ENV, "BIZAGI_PAGE_SIZE": "250"}, page_size=42)
    assert s.page_size == 42


@pytest.mark.parametrize("missing", ["BIZAGI_BASE_URL", "BIZAGI_CLIENT_ID", "BIZAGI_CLIENT_SECRET"])
def test_missing_required_variable_is_named(missing):
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        BizagiSettings.from_env(env)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BIZAGI_PAGE_SIZE", "lots", "page_size"),
        ("BIZAGI_PAGE_SIZE", "-1", "page_size"),
        ("BIZAGI_PAGE_SIZE", "100001", "page_size"),
        ("BIZAGI_FILTER_ENCODING", "twice", "filter_encoding"),
        ("BIZAGI_MAX_RETRIES", "-1", "max_retries"),
        ("BIZAGI_READ_TIMEOUT", "soon", "read_timeout"),
        ("BIZAGI_VERIFY_TLS", "maybe", "verify_tls"),
        ("BIZAGI_AUTH_METHOD", "password", "auth_method"),
        ("BIZAGI_MAX_CONCURRENCY", "1000", "max_concurrency"),
        ("BIZAGI_CA_BUNDLE", "/nonexistent/ca.pem", "ca_bundle"),
        ("BIZAGI_BASE_URL", "ftp://h.example", "base_url"),
        ("BIZAGI_TOKEN_URL", "not a url", "token_url"),
        ("BIZAGI_SCOPE", " ", "scope"),
        ("BIZAGI_REQUEST_DEADLINE", "0", "request_deadline"),
        ("BIZAGI_REQUEST_DEADLINE", "-5", "request_deadline"),
        ("BIZAGI_REQUEST_DEADLINE", "nan", "request_deadline"),
        ("BIZAGI_REQUEST_DEADLINE", "soon", "request_deadline"),
        ("BIZAGI_MAX_RESPONSE_BYTES", "1000", "max_response_bytes"),
        ("BIZAGI_MAX_RESPONSE_BYTES", "64MB", "max_response_bytes"),
        ("BIZAGI_RETRY_BUDGET", "0", "retry_budget"),
    ],
)
def test_invalid_values_fail_naming_the_setting(variable, value, named):
    with pytest.raises(SettingsError, match=named) as caught:
        BizagiSettings.from_env({**ENV, variable: value})
    assert SECRET not in str(caught.value)


def test_plain_http_is_refused_unless_loopback_or_allowed():
    with pytest.raises(SettingsError, match="unencrypted"):
        BizagiSettings(base_url="http://bizagi.example", client_id="c", client_secret=SECRET)
    allowed = BizagiSettings(
        base_url="http://bizagi.example", client_id="c", client_secret=SECRET, allow_http=True
    )
    assert allowed.token_url.startswith("http://bizagi.example")
    for host in ("127.0.0.1", "localhost", "[::1]"):
        BizagiSettings(base_url=f"http://{host}:8765", client_id="c", client_secret=SECRET)


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(SettingsError, match="credentials") as caught:
        BizagiSettings(base_url="https://me:pw123@h.example", client_id="c", client_secret=SECRET)
    assert "pw123" not in str(caught.value)


def test_empty_secret_is_refused():
    with pytest.raises(SettingsError, match="client_secret"):
        BizagiSettings(base_url="https://h.example", client_id="c", client_secret="")


def test_deadline_and_size_defaults():
    s = BizagiSettings(base_url="https://h.example", client_id="c", client_secret=SECRET)
    assert s.request_deadline == 120.0
    assert s.max_response_bytes == 64 * 1024 * 1024
    assert s.request_deadline < s.retry_budget  # a whole attempt, and a retry, fit the budget
