"""The emulator's ASGI application: Bizagi's token endpoint and OData services on Starlette.

One set of handlers serves both flavours (``EmulatorConfig.flavor``); what differs is the
envelope and paging (``envelope``), the errors (``errors``), the query's decoding (``query``)
and the tokens (``tokens``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bizagi_etl.emulator import records as rec
from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.csdl import csdl_document
from bizagi_etl.emulator.dataset import Dataset, EntityInfo, ProcessInfo
from bizagi_etl.emulator.envelope import (
    Collection,
    FilterCache,
    filtered,
    page_body,
    standard_page_body,
)
from bizagi_etl.emulator.errors import ODataError, odata_error_response
from bizagi_etl.emulator.faults import FaultInjector
from bizagi_etl.emulator.model import PROJECT_NAME, STAKEHOLDERS
from bizagi_etl.emulator.query import QueryOptions, parse_query
from bizagi_etl.emulator.skiptoken import SkipTokens
from bizagi_etl.emulator.tokens import JwtStore, TokenEndpoint, TokenStore

JSON = "application/json; odata.metadata=minimal"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CASE_NUMBER_ARG = re.compile(r"^caseNumber='((?:[^']|'')*)'$")
_MAX_PAGE_SIZE = re.compile(r"(?:^|[,;\s])(?:odata\.)?maxpagesize\s*=\s*([0-9]+)", re.IGNORECASE)
_SLASHES = re.compile(r"/{2,}")
_SLASHES_RAW = re.compile(rb"/{2,}")

Handler = Callable[[Request, QueryOptions], Response | dict[str, Any] | Collection]

DATA_RESOURCES = (
    "processes", "cases", "casesWithWorkitems", "searchByCaseNumber", "stakeholders",
    "userProfile", "entities",
)  # fmt: skip
# The standard flavour's service document lists its container as OData says, with each kind;
# Bizagi's lists the resources above (Claims is served and in $metadata, not in that list).
STANDARD_DATA_RESOURCES = (
    ("processes", "EntitySet"), ("cases", "EntitySet"), ("casesWithWorkitems", "EntitySet"),
    ("stakeholders", "EntitySet"), ("entities", "EntitySet"), ("Claims", "EntitySet"),
    ("userProfile", "Singleton"), ("searchByCaseNumber", "FunctionImport"),
)  # fmt: skip
METADATA_RESOURCES = ("processes", "stakeholders", "getProject")


class Emulated:
    """One emulated project: its data, tokens and OData handlers."""

    def __init__(self, config: EmulatorConfig, dataset: Dataset | None = None) -> None:
        self.config = config
        self.ds = dataset if dataset is not None else Dataset(config)
        self.standard = config.flavor == "standard"
        self.tokens: TokenStore | JwtStore = (
            JwtStore(config.token_ttl, config.client_id)
            if self.standard
            else TokenStore(config.token_ttl)
        )
        self.skiptokens = SkipTokens(config.seed)
        self.cache = FilterCache()
        self.process_by_id = {p.id: p for p in self.ds.processes}
        self.entity_by_id = {e.id: e for e in self.ds.entities}
        self._value_positions: dict[str, dict[str, int]] = {}  # entity id -> value id -> position

    # -- plumbing ------------------------------------------------------------------------------

    def odata(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Bearer check, query options, envelope and errors around one OData handler."""

        async def endpoint(request: Request) -> Response:
            config = self.config
            headers = {"OData-Version": "4.0"}
            try:
                self._authorise(request)
                options = parse_query(
                    request.scope["query_string"], config.lenient_options, config.flavor
                )
                path = request.url.path
                window = self._window(path, options) if self.standard else None
                with self.ds.lock:  # one instant of the clock from the first row to the last
                    result = self._answer(handler, request, options, path, window, headers)
            except ODataError as exc:
                return exc.response(config.flavor)
            if isinstance(result, Response):
                return result
            return Response(dumps(result), media_type=JSON, headers=headers)

        return endpoint

    def _answer(
        self,
        handler: Handler,
        request: Request,
        options: QueryOptions,
        path: str,
        window: tuple[int, int | None] | None,
        headers: dict[str, str],
    ) -> Response | dict[str, Any]:
        config = self.config
        result = handler(request, options)
        if isinstance(result, Collection):
            drift = self.ds.drift_at is not None
            rows = filtered(result, options, self.cache, self.ds.version, drift)
            base = _base(request)
            if window is None:
                return page_body(result, rows, options, base, path, config)
            size = self._page_size(request, headers)
            return standard_page_body(
                result, rows, options, window, size, path, config, self.skiptokens, base
            )
        return result

    def _authorise(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ODataError(
                401,
                "Authorization has been denied for this request: no bearer token.",
                headers=self._challenge(None),
            )
        problem = self.tokens.problem(token.strip())
        if problem:
            raise ODataError(
                401,
                f"Authorization has been denied for this request. {problem}",
                headers=self._challenge(problem),
            )

    def _challenge(self, problem: str | None) -> dict[str, str] | None:
        """RFC 6750 §3: the standard flavour says why a bearer token was refused."""
        if not self.standard:
            return None
        if problem is None:  # no credentials: no error code (RFC 6750 §3.1)
            return {"WWW-Authenticate": 'Bearer realm="odata"'}
        description = problem.rstrip(".")
        return {
            "WWW-Authenticate": (
                f'Bearer realm="odata", error="invalid_token", error_description="{description}"'
            )
        }

    def _window(self, path: str, options: QueryOptions) -> tuple[int, int | None]:
        """Standard flavour: (first row, row the client's $top stops at) of this request."""
        if options.skiptoken is not None:
            return self.skiptokens.read(path, options, options.skiptoken)
        end = options.skip + options.top if options.top is not None else None
        return options.skip, end

    def _page_size(self, request: Request, headers: dict[str, str]) -> int:
        """The page cap, or less when the client prefers (``Prefer: odata.maxpagesize=N``)."""
        match = _MAX_PAGE_SIZE.search(request.headers.get("prefer", ""))
        if match is None or int(match.group(1)) < 1:
            return self.config.page_cap
        size = min(int(match.group(1)), self.config.page_cap)
        headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return size

    # -- lookups -------------------------------------------------------------------------------

    def _process(self, key: str) -> ProcessInfo:
        info = self.process_by_id.get(_guid_key(key, "processes"))
        if info is None:
            raise ODataError(404, f"Resource not found for the segment 'processes({key})'.")
        return info

    def _entity(self, key: str) -> EntityInfo:
        info = self.entity_by_id.get(_guid_key(key, "entities"))
        if info is None:
            raise ODataError(404, f"Resource not found for the segment 'entities({key})'.")
        return info

    def _case(self, key: str, process: ProcessInfo | None = None) -> int:
        position = self.ds.position_of(_int_key(key, "cases"))
        if position is None or (process and int(self.ds.process[position]) != process.index):
            raise ODataError(404, f"Resource not found for the segment 'cases({key})'.")
        return position

    def _value_position(self, entity: EntityInfo, key: str) -> int:
        index = self._value_positions.get(entity.id)
        if index is None:
            ids = self.ds.entity_value_ids(entity, np.arange(self.ds.value_positions(entity)))
            index = self._value_positions[entity.id] = {v: i for i, v in enumerate(ids)}
        position = index.get(_guid_key(key, "values"))
        if position is None or not self.ds.entity_value_exists(entity, position):
            raise ODataError(404, f"Resource not found for the segment 'values({key})'.")
        return position

    # -- data service --------------------------------------------------------------------------

    def service_document(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        if self.standard:
            base = _base(request)
            return {
                "@odata.context": f"{base}/odata/data/$metadata",
                "value": [{"name": n, "kind": k, "url": n} for n, k in STANDARD_DATA_RESOURCES],
            }
        return _service_root(request, "data", DATA_RESOURCES)

    def data_metadata(self, request: Request, _: QueryOptions) -> Response:
        return _xml(csdl_document("data", drift=self.ds.drift_at is not None))

    def user_profile(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        base = _base(request)
        return {
            "@odata.context": f"{base}/odata/data/$metadata#userProfile",
            "@odata.id": f"{base}/odata/data/userProfile",
            **rec.user_profile(base),
        }

    def stakeholders(self, request: Request, _: QueryOptions, service: str = "data") -> Collection:
        base = _base(request)
        return Collection(
            context="stakeholders",
            type_name="stakeholder",
            positions=np.arange(len(STAKEHOLDERS)),
            records=lambda pos: [rec.stakeholder_record(self.ds, base, i, service) for i in pos],
            service=service,
        )

    def stakeholder(
        self, request: Request, _: QueryOptions, service: str = "data"
    ) -> dict[str, Any]:
        key = _guid_key(request.path_params["sid"], "stakeholders")
        if key not in self.ds.stakeholder_ids:
            raise ODataError(404, f"Resource not found for the segment 'stakeholders({key})'.")
        base = _base(request)
        record = rec.stakeholder_record(self.ds, base, self.ds.stakeholder_ids.index(key), service)
        return _single(base, service, f"stakeholders({key})", record)

    def processes(self, request: Request, _: QueryOptions, service: str = "data") -> Collection:
        base = _base(request)
        return Collection(
            context="processes",
            type_name="process",
            positions=np.arange(len(self.ds.processes)),
            records=lambda pos: [
                rec.process_record(self.ds, base, self.ds.processes[i], service) for i in pos
            ],
            service=service,
        )

    def process(self, request: Request, _: QueryOptions, service: str = "data") -> dict[str, Any]:
        info = self._process(request.path_params["pid"])
        base = _base(request)
        record = rec.process_record(self.ds, base, info, service)
        return _single(base, service, f"processes({info.id})", record)

    def process_cases(self, request: Request, _: QueryOptions) -> Collection:
        info = self._process(request.path_params["pid"])
        base = _base(request)
        return Collection(
            context=f"processes({info.id})/cases",
            type_name="case",
            positions=self.ds.process_positions(info.index),
            records=lambda pos: rec.case_records(self.ds, base, pos),
            fast_column=lambda name, pos: rec.case_column(self.ds, name, pos),
            extras={"@bizagi.entity": info.entity_id},
            cache_key=f"process-cases/{info.index}",
        )

    def process_case(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        info = self._process(request.path_params["pid"])
        return self._single_case(request, self._case(request.path_params["cid"], info))

    def process_case_workitems(self, request: Request, _: QueryOptions) -> Collection:
        info = self._process(request.path_params["pid"])
        return self._workitems(request, self._case(request.path_params["cid"], info))

    def inbox(self, request: Request, _: QueryOptions) -> Collection:
        base = _base(request)
        return Collection(
            context="cases",
            type_name="inboxCase",
            positions=self.ds.open_positions(),
            records=lambda pos: rec.inbox_records(self.ds, base, pos),
            fast_column=lambda name, pos: rec.case_column(self.ds, name, pos),
            cache_key="inbox",
        )

    def inbox_with_workitems(self, request: Request, _: QueryOptions) -> Collection:
        base = _base(request)
        return Collection(
            context="casesWithWorkitems",
            type_name="caseWithWorkitems",
            positions=self.ds.open_positions(),
            records=lambda pos: rec.inbox_with_workitems(self.ds, base, pos),
            fast_column=lambda name, pos: rec.case_column(self.ds, name, pos),
            cache_key="inbox-with-workitems",
        )

    def case(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        return self._single_case(request, self._case(request.path_params["cid"]))

    def case_workitems(self, request: Request, _: QueryOptions) -> Collection:
        return self._workitems(request, self._case(request.path_params["cid"]))

    def _single_case(self, request: Request, position: int) -> dict[str, Any]:
        base = _base(request)
        record = rec.case_records(self.ds, base, np.array([position]))[0]
        return _single(base, "data", f"cases({record['id']})", record)

    def _workitems(self, request: Request, position: int) -> Collection:
        items = rec.workitem_records(self.ds, _base(request), position)
        case_id = int(self.ds.case_ids(np.array([position]))[0])
        return Collection(
            context=f"cases({case_id})/workitems",
            type_name="workitem",
            positions=np.arange(len(items)),
            records=lambda pos: [items[i] for i in pos],
        )

    def search_by_case_number(self, request: Request, _: QueryOptions) -> Collection:
        match = _CASE_NUMBER_ARG.match(request.path_params["args"])
        if not match:
            raise ODataError(400, "searchByCaseNumber expects caseNumber='<case number>'.")
        number = match.group(1).replace("''", "'")
        prefix, _sep, digits = number.rpartition("-")
        position = self.ds.position_of(int(digits)) if digits.isdigit() else None
        found = (
            position is not None
            and self.ds.processes[int(self.ds.process[position])].spec.prefix == prefix
        )
        base = _base(request)
        return Collection(
            context="cases",
            type_name="case",
            positions=np.array([position] if found else [], dtype=np.int64),
            records=lambda pos: rec.case_records(self.ds, base, pos),
        )

    def entities(self, request: Request, _: QueryOptions) -> Collection:
        base = _base(request)
        return Collection(
            context="entities",
            type_name="entity",
            positions=np.arange(len(self.ds.entities)),
            records=lambda pos: [rec.entity_record(base, self.ds.entities[i]) for i in pos],
        )

    def entity(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        info = self._entity(request.path_params["eid"])
        base = _base(request)
        return _single(base, "data", f"entities({info.id})", rec.entity_record(base, info))

    def entity_values(self, request: Request, _: QueryOptions) -> Collection:
        info = self._entity(request.path_params["eid"])
        base = _base(request)
        return Collection(
            context=f"entities({info.id})/values",
            type_name="entityValue",
            positions=self.ds.entity_positions(info),
            records=lambda pos: rec.entity_value_records(self.ds, base, info, pos),
            cache_key=f"entity-values/{info.index}",
        )

    def entity_value(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        info = self._entity(request.path_params["eid"])
        position = self._value_position(info, request.path_params["vid"])
        base = _base(request)
        record = rec.entity_value_records(self.ds, base, info, np.array([position]))[0]
        return _single(base, "data", f"entities({info.id})/values({record['id']})", record)

    def claims(self, request: Request, _: QueryOptions) -> Collection:
        base = _base(request)
        claims = self.ds.claims
        return Collection(
            context="Claims",
            type_name="Claim",
            positions=claims.positions(),
            records=lambda pos: claims.records(base, pos),
            fast_column=claims.filter_column,
            cache_key="claims",
        )

    def claim(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        key = request.path_params["key"]
        position = self.ds.claims.position_of(_int_key(key, "Claims"))
        if position is None:
            raise ODataError(404, f"Resource not found for the segment 'Claims({key})'.")
        base = _base(request)
        record = self.ds.claims.records(base, np.array([position]))[0]
        return _single(base, "data", f"Claims({record['id']})", record)

    # -- metadata service ----------------------------------------------------------------------

    def metadata_root(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        return _service_root(request, "metadata", METADATA_RESOURCES)

    def metadata_metadata(self, request: Request, _: QueryOptions) -> Response:
        return _xml(csdl_document("metadata", drift=False))

    def get_project(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        return {"@odata.context": f"{_base(request)}/odata/metadata/$metadata#Edm.String",
                "value": PROJECT_NAME}  # fmt: skip

    def routes(self) -> list[Route]:
        d, m = "/odata/data", "/odata/metadata"
        meta = "metadata"
        table: list[tuple[str, Handler]] = [
            (d, self.service_document),
            (f"{d}/$metadata", self.data_metadata),
            (f"{d}/userProfile", self.user_profile),
            (f"{d}/stakeholders", self.stakeholders),
            (f"{d}/stakeholders({{sid}})", self.stakeholder),
            (f"{d}/processes", self.processes),
            (f"{d}/processes({{pid}})", self.process),
            (f"{d}/processes({{pid}})/cases", self.process_cases),
            (f"{d}/processes({{pid}})/cases({{cid}})", self.process_case),
            (f"{d}/processes({{pid}})/cases({{cid}})/workitems", self.process_case_workitems),
            (f"{d}/cases", self.inbox),
            (f"{d}/cases({{cid}})", self.case),
            (f"{d}/cases({{cid}})/workitems", self.case_workitems),
            (f"{d}/casesWithWorkitems", self.inbox_with_workitems),
            (f"{d}/searchByCaseNumber({{args}})", self.search_by_case_number),
            (f"{d}/entities", self.entities),
            (f"{d}/entities({{eid}})", self.entity),
            (f"{d}/entities({{eid}})/values", self.entity_values),
            (f"{d}/entities({{eid}})/values({{vid}})", self.entity_value),
            (f"{d}/Claims", self.claims),
            (f"{d}/Claims({{key}})", self.claim),
            (m, self.metadata_root),
            (f"{m}/$metadata", self.metadata_metadata),
            (f"{m}/processes", lambda r, o: self.processes(r, o, meta)),
            (f"{m}/processes({{pid}})", lambda r, o: self.process(r, o, meta)),
            (f"{m}/stakeholders", lambda r, o: self.stakeholders(r, o, meta)),
            (f"{m}/stakeholders({{sid}})", lambda r, o: self.stakeholder(r, o, meta)),
            (f"{m}/getProject", self.get_project),
        ]
        token = TokenEndpoint(self.config, self.tokens)
        return [
            Route("/oauth2/server/token", token.handle, methods=["POST"]),
            Route("/oauth2/server/token/", token.handle, methods=["POST"]),
            *(Route(path, self.odata(handler), methods=["GET"]) for path, handler in table),
        ]


class EmulatorApp:
    """The whole ASGI application: doubled slashes collapsed, then the switches, then routes.

    A Bizagi client that joins a base URL ending in ``/`` with a path starting with ``/`` sends
    ``//odata/...`` and ``//oauth2/server/token``, and the real host answers them; so does the
    emulator, in both flavours. Only the path is collapsed, never the query string.
    """

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
            if isinstance(scope.get("raw_path"), bytes):
                scope["raw_path"] = _SLASHES_RAW.sub(b"/", scope["raw_path"])
        await self.faults(scope, receive, send)


def build_app(emulated: Emulated) -> EmulatorApp:
    """Starlette routes wrapped in the bad-day switches, behind the slash collapser."""
    flavor = emulated.config.flavor

    async def not_found(request: Request, exc: Exception) -> Response:
        message = f"No resource matches the path {request.url.path!r}."
        return odata_error_response(404, message, flavor=flavor)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        message = f"The method {request.method} is not allowed on this resource."
        return odata_error_response(405, message, flavor=flavor)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Never a stack trace on the wire; the server log keeps it.
        message = "An internal error occurred in the emulated Bizagi service."
        return odata_error_response(500, message, flavor=flavor)

    app = Starlette(
        routes=emulated.routes(),
        exception_handlers={404: not_found, 405: not_allowed, 500: server_error},
    )
    return EmulatorApp(FaultInjector(app, emulated.config, emulated.ds))


def _decimal_text(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):  # the exact decimal text, as a JSON number
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(body: Any) -> bytes:
    """JSON as served: orjson, with ``Decimal`` written exactly (``12.3400``, never a double)."""
    return orjson.dumps(body, default=_decimal_text)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _single(base: str, service: str, context: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.context": f"{base}/odata/{service}/$metadata#{context}", **record}


def _service_root(request: Request, service: str, names: tuple[str, ...]) -> dict[str, Any]:
    base = _base(request)
    return {
        "@odata.context": f"{base}/odata/{service}/$metadata",
        "value": [{"name": n, "kind": "EntitySet", "url": n} for n in names],
    }


def _xml(text: str) -> Response:
    return Response(text, media_type="application/xml", headers={"OData-Version": "4.0"})


def _guid_key(key: str, segment: str) -> str:
    if not _GUID.match(key):
        raise ODataError(
            400, f"The key {key!r} of {segment} is not a valid Edm.Guid.", target=segment
        )
    return key.lower()


def _int_key(key: str, segment: str) -> int:
    if not key.isdigit():
        raise ODataError(
            400, f"The key {key!r} of {segment} is not a valid Edm.Int64.", target=segment
        )
    return int(key)
