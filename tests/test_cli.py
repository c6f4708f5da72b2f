"""`bizagi-etl emulator` as a user runs it: a real process on a real port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from click.testing import CliRunner

from bizagi_etl.cli import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_emulator_command_serves_and_prints_how_to_connect():
    port = _free_port()
    command = [sys.executable, "-m", "bizagi_etl.cli", "emulator", "--port", str(port),
               "--cases", "500", "--client-id", "me", "--client-secret", "s3cret"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        lines = []
        assert process.stdout is not None
        while not lines or not lines[-1].startswith("Press Ctrl+C"):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            lines.append(line.strip())
        text = "\n".join(lines)
        base = f"http://127.0.0.1:{port}"
        assert f"base URL       {base}" in text
        assert f"token URL      {base}/oauth2/server/token" in text
        assert "client id      me" in text
        assert "client secret  s3cret" in text
        token = None
        for _ in range(100):  # the banner comes just before uvicorn binds
            try:
                token = httpx.post(
                    f"{base}/oauth2/server/token",
                    auth=("me", "s3cret"),
                    data={"grant_type": "client_credentials", "scope": "api"},
                ).json()["access_token"]
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert token
        profile = httpx.get(
            f"{base}/odata/data/userProfile", headers={"Authorization": f"Bearer {token}"}
        )
        assert profile.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode == 0


def test_bad_settings_name_the_setting():
    result = CliRunner().invoke(main, ["emulator", "--start", "2030-01-01", "--end", "2029-01-01"])
    assert result.exit_code == 2
    assert "'start'" in result.output
    result = CliRunner().invoke(main, ["emulator", "--fault-rate", "1.5"])
    assert result.exit_code == 2
    assert "--fault-rate" in result.output


def test_help_documents_every_switch():
    result = CliRunner().invoke(main, ["emulator", "--help"])
    assert result.exit_code == 0
    for switch in ("--latency-ms", "--fault-rate", "--token-ttl", "--page-cap", "--drop-rate",
                   "--truncate-rate", "--mutate-rate", "--drift-date", "--repeat-next-link",
                   "--export-truth", "--seed", "--cases", "--start"):  # fmt: skip
        assert switch in result.output
