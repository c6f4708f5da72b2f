"""`bizagi-etl check`: one line of diagnosis for each way reaching Bizagi can fail."""

from __future__ import annotations

import socket

import httpx
import pytest
from click.testing import CliRunner
from conftest import SMALL
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from bizagi_etl.cli import main
from bizagi_etl.connector.check import diagnose
from bizagi_etl.connector.client import BizagiClient
from bizagi_etl.connector.errors import TransportError
from bizagi_etl.connector.settings import BizagiSettings
from bizagi_etl.emulator.app import Emulated, build_app
from bizagi_etl.emulator.server import AsgiServer


def _check(base_url: str, secret: str = "emulator-secret-change-me", **extra: str):
    env = {"BIZAGI_BASE_URL": base_url, "BIZAGI_CLIENT_ID": "bizagi-etl-demo",
           "BIZAGI_CLIENT_SECRET": secret, "BIZAGI_MAX_BACKOFF": "0.1", **extra}  # fmt: skip
    result = CliRunner().invoke(main, ["check"], env=env)
    return result.exit_code, result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_check_reports_who_and_what(small_server):
    code, output = _check(small_server.base_url)
    assert code == 0, output
    assert "runs as      etl.service (ETL Service Account, acme)" in output
    assert "lifetime 3600 s" in output
    assert "round trip" in output
    for path in (
        "odata/data/processes",
        "odata/data/casesWithWorkitems",
        "odata/metadata/processes",
    ):
        assert f"ok           {path}" in output
    assert output.rstrip().endswith("OK")
    assert "emulator-secret-change-me" not in output


def test_never_expiring_token_is_reported(make_server):
    with make_server(token_ttl=0) as server:
        code, output = _check(server.base_url)
    assert code == 0
    assert "never expires" in output


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("bad-secret", "bad credentials"),
        ("missing-scope", "missing scope"),
        ("refused", "connection refused"),
        ("tls", "TLS"),
        ("wrong-path", "wrong base URL"),
        ("no-settings", "settings: setting 'base_url' is missing"),
    ],
)
def test_each_failure_has_its_own_diagnosis(make_server, how, expected):
    with make_server(scopes=("usersync",) if how == "missing-scope" else ("api",)) as server:
        base = server.base_url
        code, output = {
            "bad-secret": lambda: _check(base, secret="wrong"),
            "missing-scope": lambda: _check(base),
            "refused": lambda: _check(f"http://127.0.0.1:{_closed_port()}"),
            "tls": lambda: _check(base.replace("http://", "https://")),
            "wrong-path": lambda: _check(base + "/not-the-project"),
            "no-settings": lambda: _check(""),
        }[how]()
    assert code == 1
    lines = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert len(lines) == 1, output
    assert expected in lines[0]
    assert "wrong" not in output.replace("wrong base URL", "")


def test_a_login_page_is_recognised():
    async def login(request):
        return HTMLResponse("<!DOCTYPE html><html><body>Sign in</body></html>")

    app = Starlette(routes=[Route("/{path:path}", login, methods=["GET", "POST"])])
    with AsgiServer(app) as server:
        code, output = _check(server.base_url)
    assert code == 1
    assert "login page" in output


def test_a_resource_that_does_not_answer_fails_the_check():
    emulator = build_app(Emulated(SMALL))

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/odata/data/entities":
            response = HTMLResponse("forbidden", status_code=403)
            await response(scope, receive, send)
            return
        await emulator(scope, receive, send)

    with AsgiServer(app) as server:
        code, output = _check(server.base_url)
    assert code == 1
    assert "HTTP 403     odata/data/entities" in output
    assert "ok           odata/data/processes" in output


class _NoDNS(httpx.BaseTransport):
    """What httpx raises when a name does not resolve; DNS itself is out of reach here."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from exc


def test_dns_failure_is_diagnosed_and_not_retried():
    settings = BizagiSettings(base_url="https://bizagi.invalid", client_id="c", client_secret="s")
    sleeps: list[float] = []
    with BizagiClient(settings, transport=_NoDNS(), sleep=sleeps.append) as client:
        with pytest.raises(TransportError) as caught:
            client.get_json(client.url("odata/data"))
    assert caught.value.kind == "dns"
    assert sleeps == []
    assert diagnose(caught.value, settings).startswith("DNS: ")


def test_a_service_without_a_user_profile_passes_with_a_note():
    """Any OData v4 service: the token and the service document decide; a missing userProfile
    or metadata service is a note, and the entity sets are listed for a streams file."""
    emulator = build_app(Emulated(SMALL))

    async def app(scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.endswith("/userProfile")
                                        or path.startswith("/odata/metadata")):  # fmt: skip
            body = {"error": {"code": "NotFound", "message": "No such resource", "details": []}}
            await JSONResponse(body, status_code=404)(scope, receive, send)
            return
        await emulator(scope, receive, send)

    with AsgiServer(app) as server:
        code, output = _check(server.base_url)
    assert code == 0, output
    assert "runs as" not in output
    assert "note         no userProfile: not a Bizagi project" in output
    assert "note         odata/metadata: no such service here" in output
    assert "offers       7: processes, cases, casesWithWorkitems" in output
    assert "ok           odata/data/processes" in output
    assert output.rstrip().endswith("OK")


def test_a_service_document_that_fails_fails_the_check():
    emulator = build_app(Emulated(SMALL))

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/odata/data":
            flat = {"code": "500", "type": "ODataException", "status": "Error", "message": "boom"}
            await JSONResponse(flat, status_code=500)(scope, receive, send)
            return
        await emulator(scope, receive, send)

    with AsgiServer(app) as server:
        code, output = _check(server.base_url, BIZAGI_MAX_RETRIES="0")
    assert code == 1
    assert "FAILED: server error" in output
    assert "[500] boom" in output
