"""The stream catalog: what each table is, one declaration per stream.

A stream names its OData path, key, partitioning (a snapshot, or daily windows on a date
cursor), declared columns and child tables. Parameter entities become one stream each,
discovered from their templates at run time. Users add their own streams in a TOML file
(``custom_streams``) without code.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from bizagi_etl.connector import EntityType, SchemaError
from bizagi_etl.connector.errors import excerpt
from bizagi_etl.pipeline.frames import columns_table, json_text, to_table
from bizagi_etl.pipeline.names import check_identifier
from bizagi_etl.pipeline.schema import (
    BIZAGI_TYPES,
    TIMESTAMP,
    Col,
    arrow_type,
    edm_arrow_type,
    safe_name,
    unique_names,
)

Record = dict[str, Any]

SNAPSHOT = "snapshot"  # the whole set, partitioned by extraction day
DAILY = "daily"  # one partition per day of the cursor

# Stream.kind: declared here, one per parameter entity, the user's own, or a family that
# stands for streams found at run time (one table each, named table_prefix + member name).
BUILTIN_KIND, ENTITY, CUSTOM, FAMILY = "builtin", "entity", "custom", "family"


@dataclass(frozen=True, slots=True)
class Child:
    """A table exploded from a list inside each parent record, partitioned with its parent."""

    name: str
    source: str  # the parent's list attribute the rows come from; not kept in the parent
    key: tuple[str, ...]
    columns: tuple[Col, ...]
    rows: Callable[[Record], list[Record]]  # parent record -> child rows (by column source)
    # parent records -> the child rows' values by column source, and each parent's row count:
    # the same rows built as columns, without a dict per row (the hot path of a backfill)
    columns_of: Callable[[Sequence[Record]], tuple[dict[str, list[Any]], list[int]]] | None = None

    def table(self, records: Sequence[Record]) -> tuple[pa.Table | None, list[int]]:
        """The child rows of ``records`` as Arrow (None: there are none), and how many rows
        each record has."""
        if self.columns_of is not None:
            values, counts = self.columns_of(records)
            return (columns_table(values, self.columns, self.name) if sum(counts) else None,
                    counts)  # fmt: skip
        per_record = [self.rows(r) for r in records]
        rows = [row for group in per_record for row in group]
        counts = [len(group) for group in per_record]
        return (to_table(rows, self.columns, self.name) if rows else None), counts


@dataclass(frozen=True, slots=True)
class Stream:
    name: str  # table name; also the lake folder
    description: str
    path: str  # under the base URL; "{process_id}" is filled per process when fanned out
    key: tuple[str, ...]  # column names
    partitioning: str  # SNAPSHOT or DAILY
    columns: tuple[Col, ...]  # declared; undeclared attributes are added as they appear
    cursor: str | None = None  # record field of the daily window (DAILY only)
    fan_out: bool = False  # run once per process (processes(id)/...), adding process_id
    children: tuple[Child, ...] = ()
    flatten: Callable[[Record], Record] | None = None  # record -> flat row, before columns
    kind: str = BUILTIN_KIND  # BUILTIN_KIND, ENTITY, CUSTOM or FAMILY
    # FAMILY only: where the members are listed, and a listed record -> its member stream
    table_prefix: str = ""
    members_path: str = ""
    member: Callable[[Record], Stream] | None = None

    @property
    def partition_column(self) -> str:
        return "day" if self.partitioning == DAILY else "snapshot"

    @property
    def child_sources(self) -> frozenset[str]:
        return frozenset(c.source for c in self.children)

    @property
    def tables(self) -> tuple[str, ...]:
        """Declared tables; a family's are found at run time (``tables_among``)."""
        if self.kind == FAMILY:
            return ()
        return (self.name, *(c.name for c in self.children))

    @property
    def tables_label(self) -> str:
        """The tables as a person reads them in the catalog."""
        if self.kind == FAMILY:
            return f"{self.table_prefix}<name>, one per member"
        return ", ".join(self.tables)

    def declared_tables(self) -> Iterator[tuple[str, tuple[Col, ...]]]:
        """(table, declared columns) of the stream and its children; none for a family."""
        if self.kind != FAMILY:
            yield self.name, self.columns
            for child in self.children:
                yield child.name, child.columns

    def tables_among(self, present: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
        """(table, key) of every table this stream fills; a family's members are found among
        ``present`` (the tables of a lake or a warehouse)."""
        if self.kind == FAMILY:
            return [(t, self.key) for t in sorted(present) if self.owns(t)]
        return [(self.name, self.key), *((c.name, c.key) for c in self.children)]

    def owns(self, name: str) -> bool:
        """Whether ``name`` is this stream or, for a family, one of its members."""
        return name == self.name or (self.kind == FAMILY and name.startswith(self.table_prefix))


_STRING = pa.string()


def _c(name: str, source: str, type_: pa.DataType = _STRING, json: bool = False) -> Col:
    return Col(name, source, type_, json)


def _typed_value(item: Record) -> tuple[str | None, str]:
    """A parameter's value as text, and its type (one pass: this runs for every parameter)."""
    if "value" not in item:
        return None, "files" if "files" in item else "null"
    value = item["value"]
    if value is None:
        return None, "null"
    if isinstance(value, str):
        return value, "string"
    text = json_text(value)
    if isinstance(value, bool):
        return text, "boolean"
    return text, "number" if isinstance(value, int | float | Decimal) else "json"


def _case_parameter_columns(cases: Sequence[Record]) -> tuple[dict[str, list[Any]], list[int]]:
    """``_case_parameters`` of many cases, as columns."""
    case_ids: list[Any] = []
    positions: list[int] = []
    xpaths: list[Any] = []
    values: list[str | None] = []
    types: list[str] = []
    files: list[str | None] = []
    counts: list[int] = []
    for case in cases:
        parameters = case.get("parameters") or ()
        counts.append(len(parameters))
        case_ids += [case["id"]] * len(parameters)
        positions += range(len(parameters))
        for p in parameters:
            value, value_type = _typed_value(p)
            values.append(value)
            types.append(value_type)
            xpaths.append(p.get("xpath"))
            attached = p.get("files")
            files.append(None if attached is None else json_text(attached))
    columns = {"case_id": case_ids, "position": positions, "xpath": xpaths, "value": values,
               "value_type": types, "files": files}  # fmt: skip
    return columns, counts


def _case_parameters(case: Record) -> list[Record]:
    case_id, rows = case["id"], []
    for i, p in enumerate(case.get("parameters") or ()):
        value, value_type = _typed_value(p)
        files = p.get("files")
        rows.append({"case_id": case_id, "position": i, "xpath": p.get("xpath"), "value": value,
                     "value_type": value_type,
                     "files": None if files is None else json_text(files)})  # fmt: skip
    return rows


def _inbox_workitems(case: Record) -> list[Record]:
    return [{"case_id": case["idCase"], **w} for w in case.get("workitems") or []]


CASE_PARAMETERS = Child(
    name="case_parameters",
    source="parameters",
    key=("case_id", "position"),
    columns=(
        _c("case_id", "case_id", pa.int64()), _c("position", "position", pa.int32()),
        _c("xpath", "xpath"), _c("value", "value"), _c("value_type", "value_type"),
        _c("files", "files"),
    ),
    rows=_case_parameters,
    columns_of=_case_parameter_columns,
)  # fmt: skip

INBOX_WORKITEMS = Child(
    name="inbox_workitems",
    source="workitems",
    key=("id",),
    columns=(
        _c("case_id", "case_id", pa.int64()), _c("id", "id", pa.int64()),
        _c("task_name", "taskName"), _c("task_display_name", "taskDisplayName"),
        _c("state", "state"), _c("solution_date", "SolutionDate", TIMESTAMP),
        _c("parameters", "parameters", json=True),
    ),
    rows=_inbox_workitems,
)  # fmt: skip

ENTITY_VALUES = "entity_values"  # the family of every entity_<name> stream


def entity_stream(entity: Record) -> Stream:
    """The values of one parameter entity, parameters pivoted into typed columns."""
    template = entity.get("template") or []
    xpaths = [str(t["xpath"]) for t in template]
    names = unique_names(["id", *xpaths, "disabled"])
    columns = [Col(names[0], "id", pa.string())]
    for name, t in zip(names[1:-1], template, strict=True):
        columns.append(
            Col(name, str(t["xpath"]), BIZAGI_TYPES.get(str(t.get("type")), pa.string()))
        )
    columns.append(Col(names[-1], "dsbl", pa.bool_()))
    table = check_identifier("stream", f"entity_{unique_names([str(entity['name'])])[0]}")
    return Stream(
        name=table,
        description=f"Values of the parameter entity {entity.get('displayName') or entity['name']}",
        path=f"odata/data/entities({entity['id']})/values",
        key=("id",),
        partitioning=SNAPSHOT,
        columns=tuple(columns),
        flatten=_pivot_parameters,
        kind=ENTITY,
    )


ENTITY_VALUES_STREAM = Stream(
    name=ENTITY_VALUES,
    description="Values of every parameter entity, one table entity_<name> each, typed from "
    "the entity's template",
    path="odata/data/entities(<id>)/values",
    key=("id",),
    partitioning=SNAPSHOT,
    columns=(),
    kind=FAMILY,
    table_prefix="entity_",
    members_path="odata/data/entities",
    member=entity_stream,
)


def _pivot_parameters(record: Record) -> Record:
    flat = {k: v for k, v in record.items() if k != "parameters"}
    for p in record.get("parameters") or []:
        flat[str(p.get("xpath"))] = p.get("value") if "value" in p else p.get("files")
    return flat


BUILTIN: tuple[Stream, ...] = (
    Stream(
        name="processes",
        description="Processes of the project (metadata service), parameters as JSON",
        path="odata/metadata/processes",
        key=("id",),
        partitioning=SNAPSHOT,
        columns=(
            _c("id", "id"), _c("name", "name"), _c("display_name", "displayName"),
            _c("entity_id", "entityId"), _c("process_id", "processId", pa.int64()),
            _c("process_type", "processType"), _c("parameters", "parameters", json=True),
            _c("template", "template", json=True),
        ),
    ),
    Stream(
        name="stakeholders",
        description="Stakeholders (personas) of the project",
        path="odata/metadata/stakeholders",
        key=("id",),
        partitioning=SNAPSHOT,
        columns=(_c("id", "id"), _c("name", "name"), _c("display_name", "displayName"),
                 _c("icon_name", "iconName")),
    ),
    Stream(
        name="entities",
        description="Parameter entities and their templates",
        path="odata/data/entities",
        key=("id",),
        partitioning=SNAPSHOT,
        columns=(_c("id", "id"), _c("name", "name"), _c("display_name", "displayName"),
                 _c("type", "type"), _c("template", "template", json=True)),
    ),
    ENTITY_VALUES_STREAM,
    Stream(
        name="cases",
        description="Cases of every process, by day of creation; parameters in case_parameters",
        path="odata/data/processes({process_id})/cases",
        key=("id",),
        partitioning=DAILY,
        cursor="creationDate",
        fan_out=True,
        columns=(
            _c("id", "id", pa.int64()), _c("process_id", "process_id"),
            _c("process_entity_key", "@processEntityKey"), _c("case_number", "caseNumber"),
            _c("creation_date", "creationDate", TIMESTAMP),
            _c("estimated_solution_date", "estimatedSolutionDate", TIMESTAMP),
            _c("solution_date", "solutionDate", TIMESTAMP), _c("process_name", "processName"),
            _c("closed", "closed", pa.bool_()),
        ),
        children=(CASE_PARAMETERS,),
    ),
    Stream(
        name="inbox",
        description="Open cases in the bound user's inbox, a snapshot per day, with workitems",
        path="odata/data/casesWithWorkitems",
        key=("id",),
        partitioning=SNAPSHOT,
        columns=(
            _c("id", "idCase", pa.int64()), _c("case_number", "caseNumber"),
            _c("creation_date", "CreationDate", TIMESTAMP),
            _c("solution_date", "SolutionDate", TIMESTAMP),
        ),
        children=(INBOX_WORKITEMS,),
    ),
)  # fmt: skip

# -- custom streams ------------------------------------------------------------------------------

_CURSOR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH = re.compile(r"odata/(data|metadata|query)/[A-Za-z0-9_()'=,.\-/ ]+")


def custom_streams(path: Path) -> list[Stream]:
    """Streams declared in a TOML file (see README, "Your own streams")."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"streams file {path}: {exc}") from None
    entries = document.get("streams", [])
    if not isinstance(entries, list):
        raise SchemaError(f"streams file {path}: expected [[streams]] tables")
    streams = [_custom(entry, f"{path} [[streams]] #{i + 1}") for i, entry in enumerate(entries)]
    _check_unique(streams, str(path))
    return streams


def _custom(entry: Any, where: str) -> Stream:
    if not isinstance(entry, dict):
        raise SchemaError(f"{where}: expected a [[streams]] table, got {entry!r}")
    unknown = set(entry) - {"name", "path", "key", "cursor", "columns", "description"}
    if unknown:
        raise SchemaError(f"{where}: unknown settings {sorted(unknown)}")
    for required in ("name", "path", "key"):
        if required not in entry:
            raise SchemaError(f"{where}: {required!r} is required")
    name = check_identifier("stream", str(entry["name"]))
    where = f"{where} ({name})"
    path = str(entry["path"]).strip().lstrip("/")
    if not _PATH.fullmatch(path) or ".." in path or "//" in path:
        raise SchemaError(
            f"{where}: path {entry['path']!r} must be an OData path of the project such as "
            "odata/data/processes(<id>)/cases, without query, '..' or host"
        )
    declared = entry.get("columns", {})
    if not isinstance(declared, dict):
        raise SchemaError(f"{where}: columns must be a table of source = type")
    sources = list(declared)
    names = unique_names(sources)
    columns = tuple(
        Col(n, s, arrow_type(str(declared[s]), where), json=declared[s] == "json")
        for n, s in zip(names, sources, strict=True)
    )
    keys = entry["key"] if isinstance(entry["key"], list) else [entry["key"]]
    cursor = entry.get("cursor")
    if cursor is not None and not _CURSOR.fullmatch(str(cursor)):
        raise SchemaError(f"{where}: cursor {cursor!r} is not an attribute name")
    return Stream(
        name=name,
        description=str(entry.get("description", f"Custom stream over {path}")),
        path=path,
        key=tuple(unique_names([str(k)])[0] for k in keys),
        partitioning=DAILY if cursor else SNAPSHOT,
        columns=columns,
        cursor=str(cursor) if cursor else None,
        kind=CUSTOM,
    )


def _check_unique(streams: Iterable[Stream], where: str) -> None:
    taken = {t for s in BUILTIN for t in (s.name, *s.tables)}
    for stream in streams:
        if stream.name in taken or any(s.owns(stream.name) for s in BUILTIN):
            raise SchemaError(f"{where}: stream name {stream.name!r} is taken")
        taken.add(stream.name)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Built-in streams plus the user's own."""

    streams: tuple[Stream, ...] = BUILTIN
    custom: tuple[Stream, ...] = field(default=())

    @classmethod
    def load(cls, streams_file: Path | None = None) -> Catalog:
        custom = tuple(custom_streams(streams_file)) if streams_file else ()
        return cls(BUILTIN, custom)

    def all(self) -> tuple[Stream, ...]:
        return self.streams + self.custom

    def get(self, name: str) -> Stream:
        """The stream named ``name``, or the family one of whose members it names."""
        for stream in self.all():
            if stream.owns(name):
                return stream
        members = [f"{s.table_prefix}<name>" for s in self.all() if s.kind == FAMILY]
        raise SchemaError(
            f"unknown stream {excerpt(name)}; known: {', '.join(s.name for s in self.all())}"
            + "".join(f", {m}" for m in members)
        )


def apply_metadata(stream: Stream, entity: EntityType) -> Stream:
    """The stream with the columns a service's ``$metadata`` declares for its records.

    Declared columns win (the catalog's, or a streams file's types); a property nothing else
    declares is typed from its Edm type (nested values as JSON), named safely, and kept in the
    order the service declares it. A custom stream's columns follow that order throughout;
    a built-in's keep theirs, with the service's extras after. Properties with no faithful
    column type, and lists that child tables take, are left to inference as before. A stream
    whose records are reshaped before typing (``flatten``) is described by its own columns.
    """
    if stream.flatten is not None or stream.kind == FAMILY:
        return stream
    by_source = {c.source: c for c in stream.columns}
    props = [p for p in entity.properties if p.name not in stream.child_sources]
    typed = [(p, edm_arrow_type(p)) for p in props]
    extra = [(p, t) for p, t in typed if p.name not in by_source and (t is not None or p.nested)]
    names = unique_names([c.name for c in stream.columns] + [p.name for p, _ in extra])
    found = {
        p.name: Col(name, p.name, t or pa.string(), json=p.nested)
        for (p, t), name in zip(extra, names[len(stream.columns) :], strict=True)
    }
    if stream.kind == CUSTOM:
        ordered = [by_source.get(p.name) or found[p.name] for p in props
                   if p.name in by_source or p.name in found]  # fmt: skip
        ordered += [c for c in stream.columns if c not in ordered]
    else:
        ordered = [*stream.columns, *found.values()]
    return replace(stream, columns=tuple(ordered))


def check_attributes(stream: Stream, attributes: Iterable[str], where: str) -> None:
    """Fail before anything lands when the key or the cursor names no attribute of the
    records (or of what the service's ``$metadata`` declares): a wrong key in a streams file
    would otherwise land a table no view can be built on."""
    present = set(attributes)
    names = {c.name for c in stream.columns} | {safe_name(a) for a in present}
    missing = [k for k in stream.key if k not in names]
    if stream.cursor is not None and stream.cursor not in present | {
        c.source for c in stream.columns
    }:
        missing.append(stream.cursor)
    if missing:
        known = ", ".join(sorted(present)[:20]) + (", ..." if len(present) > 20 else "")
        raise SchemaError(
            f"stream {stream.name!r}: {' and '.join(map(repr, missing))} names no attribute of "
            f"{where} (attributes: {known or 'none'}); fix key/cursor in the streams file"
        )
