"""The emulator's ASGI application: Bizagi's token endpoint and OData services on Starlette."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bizagi_etl.emulator import records as rec
from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.csdl import csdl_document
from bizagi_etl.emulator.dataset import FIRST_CASE_ID, Dataset, EntityInfo, ProcessInfo
from bizagi_etl.emulator.envelope import Collection, FilterCache, filtered, page_body
from bizagi_etl.emulator.errors import ODataError, odata_error_response
from bizagi_etl.emulator.faults import FaultInjector
from bizagi_etl.emulator.model import PROJECT_NAME, STAKEHOLDERS
from bizagi_etl.emulator.query import QueryOptions, parse_query
from bizagi_etl.emulator.tokens import TokenEndpoint, TokenStore

JSON = "application/json; odata.metadata=minimal"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CASE_NUMBER_ARG = re.compile(r"^caseNumber='((?:[^']|'')*)'$")

Handler = Callable[[Request, QueryOptions], Response | dict[str, Any] | Collection]

DATA_RESOURCES = (
    "processes", "cases", "casesWithWorkitems", "searchByCaseNumber", "stakeholders",
    "userProfile", "entities",
)  # fmt: skip
METADATA_RESOURCES = ("processes", "stakeholders", "getProject")


class Emulated:
    """One emulated project: its data, tokens and OData handlers."""

    def __init__(self, config: EmulatorConfig, dataset: Dataset | None = None) -> None:
        self.config = config
        self.ds = dataset if dataset is not None else Dataset(config)
        self.tokens = TokenStore(config.token_ttl)
        self.cache = FilterCache()
        self.process_by_id = {p.id: p for p in self.ds.processes}
        self.entity_by_id = {e.id: e for e in self.ds.entities}
        self._value_positions: dict[str, dict[str, int]] = {}  # entity id -> value id -> position

    # -- plumbing ------------------------------------------------------------------------------

    def odata(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Bearer check, query options, envelope and errors around one OData handler."""

        async def endpoint(request: Request) -> Response:
            try:
                self._authorise(request)
                options = parse_query(request.scope["query_string"], self.config.lenient_options)
                result = handler(request, options)
            except ODataError as exc:
                return exc.response()
            if isinstance(result, Response):
                return result
            if isinstance(result, Collection):
                try:
                    rows = filtered(
                        result, options, self.cache, self.ds.version, self.ds.drift_at is not None
                    )
                except ODataError as exc:
                    return exc.response()
                path = request.url.path
                result = page_body(result, rows, options, _base(request), path, self.config)
            return Response(orjson.dumps(result), media_type=JSON, headers={"OData-Version": "4.0"})

        return endpoint

    def _authorise(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ODataError(
                401, "Authorization has been denied for this request: no bearer token."
            )
        problem = self.tokens.problem(token.strip())
        if problem:
            raise ODataError(401, f"Authorization has been denied for this request. {problem}")

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
            ids = self.ds.entity_value_ids(entity, np.arange(entity.spec.size))
            index = self._value_positions[entity.id] = {v: i for i, v in enumerate(ids)}
        position = index.get(_guid_key(key, "values"))
        if position is None:
            raise ODataError(404, f"Resource not found for the segment 'values({key})'.")
        return position

    # -- data service --------------------------------------------------------------------------

    def service_document(self, request: Request, _: QueryOptions) -> dict[str, Any]:
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
        return Collection(
            context=f"cases({position + FIRST_CASE_ID})/workitems",
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
            positions=np.arange(info.spec.size),
            records=lambda pos: rec.entity_value_records(self.ds, base, info, pos),
            cache_key=f"entity-values/{info.index}",
        )

    def entity_value(self, request: Request, _: QueryOptions) -> dict[str, Any]:
        info = self._entity(request.path_params["eid"])
        position = self._value_position(info, request.path_params["vid"])
        base = _base(request)
        record = rec.entity_value_records(self.ds, base, info, np.array([position]))[0]
        return _single(base, "data", f"entities({info.id})/values({record['id']})", record)

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


def build_app(emulated: Emulated) -> FaultInjector:
    """Starlette routes wrapped in the bad-day switches."""
    app = Starlette(
        routes=emulated.routes(),
        exception_handlers={404: _not_found, 405: _not_allowed, 500: _server_error},
    )
    return FaultInjector(app, emulated.config, emulated.ds)


async def _not_found(request: Request, exc: Exception) -> Response:
    return odata_error_response(404, f"No resource matches the path {request.url.path!r}.")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return odata_error_response(
        405, f"The method {request.method} is not allowed on this resource."
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    # Never a stack trace on the wire; the server log keeps it.
    return odata_error_response(500, "An internal error occurred in the emulated Bizagi service.")


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
        raise ODataError(400, f"The key {key!r} of {segment} is not a valid Edm.Guid.")
    return key.lower()


def _int_key(key: str, segment: str) -> int:
    if not key.isdigit():
        raise ODataError(400, f"The key {key!r} of {segment} is not a valid Edm.Int64.")
    return int(key)
