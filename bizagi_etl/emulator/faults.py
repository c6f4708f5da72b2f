"""A bad day, on request: latency, 429/503 with Retry-After, dropped and truncated answers,
and cases created while a client pages.

Every decision hashes (seed, switch, request, attempt): the n-th time a client sends the same
request it meets the same fate in every run, whatever else is going on concurrently.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import time
from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bizagi_etl.emulator import hashrng
from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.dataset import Dataset
from bizagi_etl.emulator.errors import odata_error_response

JITTER = 0.25  # latency varies by +-25 %
_INCOMPLETE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """A dropped connection is the point of --drop-rate, not a server error worth logging."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _INCOMPLETE


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class FaultInjector:
    """ASGI middleware applying the switches to ``/odata`` requests."""

    def __init__(self, app: ASGIApp, config: EmulatorConfig, dataset: Dataset) -> None:
        self.app = app
        self.config = config
        self.dataset = dataset
        self.attempts: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # what was injected, for tests and the log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/odata"):
            await self.app(scope, receive, send)
            return
        identity = f"{scope['method']} {scope['path']}?{scope['query_string'].decode('latin-1')}"
        self.attempts[identity] += 1
        key = _key(identity, self.attempts[identity])
        await self._delay(key)
        if self._hit("fault", key, self.config.fault_rate):
            await self._refuse(key, scope, receive, send)
            return
        if self._hit("mutate", key, self.config.mutate_rate):
            self.dataset.add_case()
            self.counts["mutate"] += 1
        if self._hit("drop", key, self.config.drop_rate):
            await self._respond_cut(scope, receive, send, drop=True)
        elif self._hit("truncate", key, self.config.truncate_rate):
            await self._respond_cut(scope, receive, send, drop=False)
        else:
            await self.app(scope, receive, send)

    def _hit(self, switch: str, key: int, rate: float) -> bool:
        return rate > 0 and hashrng.uniform_one(self.config.seed, switch, key) < rate

    async def _delay(self, key: int) -> None:
        if self.config.latency_ms <= 0:
            return
        jitter = 1 + JITTER * (2 * hashrng.uniform_one(self.config.seed, "latency", key) - 1)
        await asyncio.sleep(self.config.latency_ms * jitter / 1000)

    async def _refuse(self, key: int, scope: Scope, receive: Receive, send: Send) -> None:
        """429 with Retry-After in seconds, or 503 with Retry-After as an HTTP date."""
        wait = self.config.retry_after
        flavor = self.config.flavor
        if hashrng.uniform_one(self.config.seed, "fault-kind", key) < 0.5:
            self.counts["429"] += 1
            response = odata_error_response(
                429, "Too many requests. Retry later.", {"Retry-After": str(wait)}, flavor
            )
        else:
            self.counts["503"] += 1
            # An HTTP date has whole seconds: round up so the client never comes back early.
            when = email.utils.formatdate(int(time.time()) + wait + 1, usegmt=True)
            response = odata_error_response(
                503, "The service is temporarily unavailable.", {"Retry-After": when}, flavor
            )
        await response(scope, receive, send)

    async def _respond_cut(self, scope: Scope, receive: Receive, send: Send, drop: bool) -> None:
        """Run the app, then deliver only part of its body."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if drop:
            # Announce the whole body, send half, hang up: the client sees a broken connection.
            self.counts["drop"] += 1
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": cut, "more_body": True})
            return
        # A complete HTTP answer whose JSON stops halfway.
        self.counts["truncate"] += 1
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": cut})


def _key(identity: str, attempt: int) -> int:
    digest = hashlib.blake2b(f"{identity}#{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
