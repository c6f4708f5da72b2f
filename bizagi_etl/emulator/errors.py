"""Error bodies of both flavours, and the token endpoint's OAuth2 errors.

Bizagi answers OData errors flat (reference §3, §6.8)::

    {"code": "404", "type": "ODataException", "status": "NotFound", "message": "..."}

a standard OData v4 service nests them (OData JSON Format §21)::

    {"error": {"code": "NotFound", "message": "...", "target": "...", "details": [...]}}
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from bizagi_etl.emulator.config import Flavor


class ODataError(Exception):
    """An OData error: status, message, and optionally what it is about (``target``)."""

    def __init__(
        self,
        status: int,
        message: str,
        target: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target  # a query option, a key segment, ...: details of a nested body
        self.headers = headers

    def response(self, flavor: Flavor = "bizagi") -> Response:
        return odata_error_response(self.status, self.message, self.headers, flavor, self.target)


def odata_error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    flavor: Flavor = "bizagi",
    target: str | None = None,
) -> Response:
    code = HTTPStatus(status).phrase.replace(" ", "")
    body: dict[str, Any]
    if flavor == "standard":
        error: dict[str, Any] = {"code": code, "message": message}
        if target is not None:
            error["target"] = target
        error["details"] = (
            [{"code": code, "message": message, "target": target}] if target is not None else []
        )
        body = {"error": error}
    else:
        body = {"code": str(status), "type": "ODataException", "status": code, "message": message}
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def oauth_error_response(
    status: int,
    error: str,
    description: str,
    as_200: bool,
    flavor: Flavor = "bizagi",
    headers: dict[str, str] | None = None,
) -> Response:
    """Bizagi: ``{"error", "error_description", "http_status_code"}``; standard (RFC 6749 §5.2):
    ``{"error", "error_description"}``. Some gateways answer either with 200."""
    body: dict[str, Any] = {"error": error, "error_description": description}
    if flavor == "bizagi":
        body["http_status_code"] = status
    status_sent = 200 if as_200 else status
    return Response(orjson.dumps(body), status_sent, headers=headers, media_type="application/json")
