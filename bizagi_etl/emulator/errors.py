"""Bizagi's flat OData error body (reference §3, §6.8) and the token endpoint's OAuth2 errors."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.responses import Response


class ODataError(Exception):
    """Answered as ``{"code": "<status>", "type": "ODataException", "status", "message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return odata_error_response(self.status, self.message)


def odata_error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "code": str(status),
        "type": "ODataException",
        "status": HTTPStatus(status).phrase.replace(" ", ""),
        "message": message,
    }
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def oauth_error_response(status: int, error: str, description: str, as_200: bool) -> Response:
    """``{"error", "error_description", "http_status_code"}``; some gateways answer it with 200."""
    body = {"error": error, "error_description": description, "http_status_code": status}
    return Response(orjson.dumps(body), 200 if as_200 else status, media_type="application/json")
