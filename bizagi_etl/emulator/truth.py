"""Ground truth: every row the emulator would serve, written as Parquet.

Built from the same record functions the HTTP layer serves, so a test comparing what a
pipeline landed with these files compares it with what the server holds. Nested lists stay
JSON text and parameter values are JSON text too, because a Bizagi value is heterogeneous
(``"5"``, ``5``, ``5.0``, ``true`` and ``null`` are different answers).

Files: processes, stakeholders, user_profile, entities, entity_values (long: one row per
value and attribute), cases, case_parameters (long), workitems, inbox, claims. All as the world
stands at the dataset's clock (``--now``): the cases that exist then, open or closed as they are
then, with the parameters, pending workitems and entity values of that instant.

``claims`` is typed exactly as ``$metadata`` declares it, column for column in the served
order: Edm.Decimal(p,s) as decimal128(p,s), Edm.DateTimeOffset as UTC timestamps (the instant;
the offset a value was written with is not kept), Edm.Date as date32, Edm.Int16/32/64 as
int16/32/64, Edm.Guid as lower-case text, and "" stays distinct from null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bizagi_etl.emulator import records as rec
from bizagi_etl.emulator.claims import Claims
from bizagi_etl.emulator.dataset import Dataset
from bizagi_etl.emulator.model import DRIFT_ATTRIBUTE, STAKEHOLDERS
from bizagi_etl.emulator.schema import CLAIM, Prop

BATCH = 20_000  # cases per batch: bounds memory whatever the history's size
BASE = "http://truth.invalid"  # @odata.id is dropped; records still need a base to build


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("@odata.")}


CASE_SCHEMA = pa.schema(
    [
        ("id", pa.int64()), ("process_id", pa.string()), ("processEntityKey", pa.string()),
        ("caseNumber", pa.string()), ("creationDate", pa.string()),
        ("estimatedSolutionDate", pa.string()), ("solutionDate", pa.string()),
        ("processName", pa.string()), ("closed", pa.bool_()), (DRIFT_ATTRIBUTE, pa.string()),
        ("creation_utc", pa.timestamp("s", tz="UTC")),
    ]
)  # fmt: skip
PARAM_SCHEMA = pa.schema(
    [("case_id", pa.int64()), ("position", pa.int32()), ("xpath", pa.string()),
     ("value", pa.string()), ("files", pa.string())]
)  # fmt: skip
WORKITEM_SCHEMA = pa.schema(
    [("case_id", pa.int64()), ("id", pa.int64()), ("taskName", pa.string()),
     ("taskDisplayName", pa.string()), ("state", pa.string()), ("SolutionDate", pa.string()),
     ("parameters", pa.string())]
)  # fmt: skip
INBOX_SCHEMA = pa.schema(
    [("idCase", pa.int64()), ("caseNumber", pa.string()), ("CreationDate", pa.string()),
     ("SolutionDate", pa.string())]
)  # fmt: skip


def export_truth(ds: Dataset, folder: Path, *, cases_only: bool = False) -> dict[str, int]:
    """Write every file, as the world stands at the dataset's clock; returns rows per file.

    ``cases_only`` writes the case files alone (cases, case_parameters, workitems, inbox): a
    test that compares them after every move of the clock need not write 100,000 products.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with ds.lock:
        return _write_cases(ds, folder) if cases_only else _export(ds, folder)


def _export(ds: Dataset, folder: Path) -> dict[str, int]:
    counts = {
        "processes": _write_small(folder / "processes.parquet", _processes(ds)),
        "stakeholders": _write_small(folder / "stakeholders.parquet", _stakeholders(ds)),
        "user_profile": _write_small(folder / "user_profile.parquet", [rec.user_profile(BASE)]),
        "entities": _write_small(folder / "entities.parquet", _entities(ds)),
        "entity_values": _write_entity_values(ds, folder / "entity_values.parquet"),
    }
    counts |= _write_cases(ds, folder)
    counts["claims"] = write_claims(ds.claims, folder / "claims.parquet")
    return counts


def _write_small(path: Path, rows: list[dict[str, Any]]) -> int:
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd")
    return len(rows)


def _processes(ds: Dataset) -> list[dict[str, Any]]:
    out = []
    for info in ds.processes:
        record = _strip(rec.process_record(ds, BASE, info, "metadata"))
        record["parameters"] = _json(record["parameters"])
        record["template"] = _json(record["template"])
        out.append(record)
    return out


def _stakeholders(ds: Dataset) -> list[dict[str, Any]]:
    return [_strip(rec.stakeholder_record(ds, BASE, i, "data")) for i in range(len(STAKEHOLDERS))]


def _entities(ds: Dataset) -> list[dict[str, Any]]:
    out = []
    for info in ds.entities:
        record = _strip(rec.entity_record(BASE, info))
        record["template"] = _json(record["template"])
        out.append(record)
    return out


def _write_entity_values(ds: Dataset, path: Path) -> int:
    schema = pa.schema(
        [("entity_id", pa.string()), ("entity_name", pa.string()), ("value_id", pa.string()),
         ("position", pa.int32()), ("xpath", pa.string()), ("value", pa.string())]
    )  # fmt: skip
    written = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for info in ds.entities:
            existing = ds.entity_positions(info)
            for start in range(0, len(existing), BATCH):
                positions = existing[start : start + BATCH]
                rows = [
                    {"entity_id": info.id, "entity_name": info.spec.name, "value_id": v["id"],
                     "position": i, "xpath": p["xpath"], "value": _json(p["value"])}
                    for v in ds.entity_values(info, positions)
                    for i, p in enumerate(v["parameters"])
                ]  # fmt: skip
                writer.write_table(pa.Table.from_pylist(rows, schema))
                written += len(positions)
    return written


def _case_batches(ds: Dataset) -> Iterator[np.ndarray]:
    positions = ds.all_positions()[::-1]  # the cases that exist at the clock, oldest first
    for start in range(0, len(positions), BATCH):
        yield positions[start : start + BATCH]


def _write_cases(ds: Dataset, folder: Path) -> dict[str, int]:
    counts = {"cases": 0, "case_parameters": 0, "workitems": 0, "inbox": 0}
    with (
        pq.ParquetWriter(folder / "cases.parquet", CASE_SCHEMA, compression="zstd") as cases,
        pq.ParquetWriter(
            folder / "case_parameters.parquet", PARAM_SCHEMA, compression="zstd"
        ) as params,
        pq.ParquetWriter(
            folder / "workitems.parquet", WORKITEM_SCHEMA, compression="zstd"
        ) as items,
        pq.ParquetWriter(folder / "inbox.parquet", INBOX_SCHEMA, compression="zstd") as inbox,
    ):
        for positions in _case_batches(ds):
            records = rec.case_records(ds, BASE, positions)
            case_rows, param_rows = _case_rows(ds, positions, records)
            open_positions = positions[~ds.closed[positions]]
            item_rows = [
                {"case_id": case_id, **_workitem(w)}
                for case_id, items in zip(
                    ds.case_ids(open_positions).tolist(), ds.workitems_of(open_positions),
                    strict=True,
                )
                for w in items
            ]  # fmt: skip
            inbox_rows = [
                {k: r[k] for k in INBOX_SCHEMA.names}
                for r in rec.inbox_records(ds, BASE, open_positions)
            ]
            cases.write_table(pa.Table.from_pylist(case_rows, CASE_SCHEMA))
            params.write_table(pa.Table.from_pylist(param_rows, PARAM_SCHEMA))
            items.write_table(pa.Table.from_pylist(item_rows, WORKITEM_SCHEMA))
            inbox.write_table(pa.Table.from_pylist(inbox_rows, INBOX_SCHEMA))
            counts["cases"] += len(case_rows)
            counts["case_parameters"] += len(param_rows)
            counts["workitems"] += len(item_rows)
            counts["inbox"] += len(inbox_rows)
    return counts


def _case_rows(
    ds: Dataset, positions: np.ndarray, records: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    created = ds.created[positions].tolist()
    case_rows, param_rows = [], []
    for record, instant, position in zip(records, created, positions.tolist(), strict=True):
        info = ds.processes[int(ds.process[position])]
        case_rows.append(
            {**_strip(record), "process_id": info.id,
             "processEntityKey": record["@processEntityKey"],
             "creation_utc": dt.datetime.fromtimestamp(instant, dt.UTC)}
        )  # fmt: skip
        for i, p in enumerate(record["parameters"]):
            param_rows.append(
                {"case_id": record["id"], "position": i, "xpath": p["xpath"],
                 "value": _json(p["value"]) if "value" in p else None,
                 "files": _json(p["files"]) if "files" in p else None}
            )  # fmt: skip
    return case_rows, param_rows


def _workitem(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "parameters": _json(item["parameters"])}


def _arrow_type(prop: Prop) -> pa.DataType:
    if prop.edm == "Edm.Decimal":
        return pa.decimal128(prop.precision or 38, prop.scale or 0)
    return {
        "Edm.Int64": pa.int64(), "Edm.Int32": pa.int32(), "Edm.Int16": pa.int16(),
        "Edm.Double": pa.float64(), "Edm.Boolean": pa.bool_(), "Edm.Date": pa.date32(),
        "Edm.DateTimeOffset": pa.timestamp("us", tz="UTC"), "Edm.String": pa.string(),
        "Edm.Guid": pa.string(),
    }[prop.edm]  # fmt: skip


CLAIM_SCHEMA = pa.schema(
    [pa.field(p.name, _arrow_type(p), nullable=p.nullable) for p in CLAIM],
    metadata={b"odata.entity_set": b"Claims", b"odata.key": b"id"},
)


def claims_table(claims: Claims, positions: np.ndarray) -> pa.Table:
    """Some claims, typed as CLAIM_SCHEMA, from the same columns the server serves."""
    arrays = []
    for prop, field in zip(CLAIM, CLAIM_SCHEMA, strict=True):
        values, nulls = claims.column(prop.name, positions)
        if prop.edm == "Edm.Decimal":
            array = pa.array(claims.json_column(prop.name, positions), field.type)
        elif prop.name == "submittedAt":
            array = pa.array(values * 1_000_000, pa.int64(), mask=nulls).cast(field.type)
        elif prop.edm == "Edm.DateTimeOffset":  # lastModified: UTC microseconds already
            array = pa.array(values, pa.int64(), mask=nulls).cast(field.type)
        elif prop.edm == "Edm.Date":
            array = pa.array(values.astype(np.int32), pa.int32(), mask=nulls).cast(field.type)
        elif values.dtype == object:
            array = pa.array(values.tolist(), field.type)
        else:
            array = pa.array(values, mask=nulls).cast(field.type)  # safe: overflow raises
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=CLAIM_SCHEMA)


def write_claims(claims: Claims, path: Path) -> int:
    """The claims alone, as ``export_truth`` writes them into claims.parquet."""
    with pq.ParquetWriter(path, CLAIM_SCHEMA, compression="zstd") as writer:
        for start in range(0, claims.size, BATCH):
            positions = np.arange(start, min(start + BATCH, claims.size), dtype=np.int64)
            writer.write_table(claims_table(claims, positions))
    return claims.size
