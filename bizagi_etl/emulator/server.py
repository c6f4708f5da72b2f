"""Serving the emulator: in-process for tests and the demo, or in the foreground for the CLI."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from collections import Counter
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from bizagi_etl.emulator.app import Emulated, EmulatorApp, build_app
from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.dataset import Dataset

log = logging.getLogger(__name__)


def _uvicorn_config(app: ASGIApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=30,
    )


class AsgiServer:
    """Any ASGI app on 127.0.0.1 in a background thread; a context manager on a free port."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> AsgiServer:
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, "warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="asgi-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmulatorServer:
    """A running emulator on 127.0.0.1; a context manager that picks a free port.

    Its clock is read once when it starts (``config.clock()``) and stays there until the test
    moves it with ``set_now`` or ``advance``.

    >>> with EmulatorServer(EmulatorConfig(cases=100)) as bizagi:
    ...     bizagi.base_url
    'http://127.0.0.1:...'
    """

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.emulated: Emulated | None = None
        self._app: EmulatorApp | None = None
        self._server: AsgiServer | None = None

    def __repr__(self) -> str:
        return f"EmulatorServer(base_url={self.base_url!r}, client_id={self.config.client_id!r})"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/server/token"

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    @property
    def now(self) -> dt.datetime:
        """The emulator's clock: the instant whose world it serves (UTC)."""
        return self._dataset().now_instant

    def set_now(self, instant: dt.datetime | dt.date) -> dt.datetime:
        """Serve the world as it stands at ``instant`` from the next request on.

        A date is its midnight UTC, a naive date-time is UTC. Thread-safe: a request being
        answered finishes at the old instant. The clock only moves forward (``ValueError``
        otherwise), and no further than the settings allow (``EmulatorConfigError``). Returns
        the new clock.
        """
        return self._dataset().set_now(instant)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move the clock forward by ``delta``; returns the new clock."""
        return self._dataset().advance(delta)

    def _dataset(self) -> Dataset:
        if self.emulated is None:
            raise RuntimeError("the emulator has no clock before it starts: call start() first")
        return self.emulated.ds

    @property
    def injected(self) -> Counter[str]:
        """What the bad-day switches have done so far: 429, 503, drop, truncate, mutate."""
        return self._app.faults.counts if self._app is not None else Counter()

    def start(self) -> EmulatorServer:
        self.emulated = Emulated(self.config)
        self._app = build_app(self.emulated)
        self._server = AsgiServer(self._app, self.host, self.port).start()
        self.port = self._server.port
        log.info("Bizagi emulator serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(emulated: Emulated, host: str, port: int) -> None:
    """Run in the foreground until interrupted (the CLI's ``bizagi-etl emulator``)."""
    sock = _bind(host, port)
    uvicorn.Server(_uvicorn_config(build_app(emulated), "warning")).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it, Nagle's algorithm and the client's delayed
    # ACK stall every keep-alive response by about 40 ms (measured: 44 ms -> 1 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock
