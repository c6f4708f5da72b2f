"""JSON records in Bizagi's shapes (reference §4, §7), built for exactly the rows requested."""

from __future__ import annotations

from typing import Any

import numpy as np

from bizagi_etl.emulator.dataset import (
    I64,
    NULL_TIME,
    Dataset,
    EntityInfo,
    ProcessInfo,
    format_local,
)
from bizagi_etl.emulator.model import BOUND_USER, DRIFT_ATTRIBUTE, STAKEHOLDERS

Record = dict[str, Any]


def case_records(ds: Dataset, base: str, positions: I64) -> list[Record]:
    """Cases as ``processes(id)/cases``, ``cases(id)`` and ``searchByCaseNumber`` serve them."""
    ids = ds.case_ids(positions).tolist()
    offsets = ds.offset[positions]
    created = format_local(ds.created[positions], offsets)
    estimated = format_local(ds.estimated[positions], offsets)
    solved = format_local(ds.solved[positions], offsets)
    params = ds.case_parameters(positions)
    drifted = ds.is_drifted(positions)
    priorities = ds.priorities(positions) if drifted.any() else []
    out = []
    for j, process_index in enumerate(ds.process[positions].tolist()):
        info = ds.processes[process_index]
        record: Record = {
            "@odata.id": f"{base}/odata/data/cases({ids[j]})",
            "@processEntityKey": info.entity_id,
            "id": ids[j],
            "caseNumber": f"{info.spec.prefix}-{ids[j]}",
            "creationDate": created[j],
            "estimatedSolutionDate": estimated[j],
            "solutionDate": solved[j],
            "processName": info.spec.display,
            "closed": bool(ds.closed[positions[j]]),
            "parameters": params[j],
        }
        if drifted[j]:
            record[DRIFT_ATTRIBUTE] = priorities[j]
        out.append(record)
    return out


def inbox_records(ds: Dataset, base: str, positions: I64) -> list[Record]:
    """The bound user's open cases as ``/cases`` lists them (capitalised date names)."""
    return [
        {
            "@odata.id": c["@odata.id"],
            "idCase": c["id"],
            "caseNumber": c["caseNumber"],
            "SolutionDate": c["estimatedSolutionDate"],
            "CreationDate": c["creationDate"],
            "parameters": c["parameters"],
        }
        for c in case_records(ds, base, positions)
    ]


def inbox_with_workitems(ds: Dataset, base: str, positions: I64) -> list[Record]:
    """``casesWithWorkitems``: the inbox with each case's pending workitems inline."""
    offsets = ds.offset[positions]
    created = format_local(ds.created[positions], offsets)
    estimated = format_local(ds.estimated[positions], offsets)
    ids = ds.case_ids(positions).tolist()
    workitems = ds.workitems_of(positions)
    out = []
    for j, position in enumerate(positions.tolist()):
        info = ds.processes[int(ds.process[position])]
        case_id = ids[j]
        out.append(
            {
                "@odata.id": f"{base}/odata/data/cases({case_id})",
                "idCase": case_id,
                "caseNumber": f"{info.spec.prefix}-{case_id}",
                "CreationDate": created[j],
                "SolutionDate": estimated[j],
                "workitems": _with_ids(base, case_id, workitems[j]),
            }
        )
    return out


def workitem_records(ds: Dataset, base: str, position: int) -> list[Record]:
    case_id = int(ds.case_ids(np.array([position]))[0])
    return _with_ids(base, case_id, ds.workitems(position))


def _with_ids(base: str, case_id: int, items: list[Record]) -> list[Record]:
    return [
        {"@odata.id": f"{base}/odata/data/cases({case_id})/workitems({w['id']})", **w}
        for w in items
    ]


def process_record(ds: Dataset, base: str, info: ProcessInfo, service: str) -> Record:
    record: Record = {
        "@odata.id": f"{base}/odata/{service}/processes({info.id})",
        "id": info.id,
        "name": info.spec.name,
        "displayName": info.spec.display,
        "parameters": ds.process_parameters(info),
        "template": ds.process_template(info),
    }
    if service == "metadata":
        record |= {"entityId": info.entity_id, "processId": info.number, "processType": "Process"}
    return record


def stakeholder_record(ds: Dataset, base: str, index: int, service: str) -> Record:
    spec, guid = STAKEHOLDERS[index], ds.stakeholder_ids[index]
    return {
        "@odata.id": f"{base}/odata/{service}/stakeholders({guid})",
        "id": guid,
        "name": spec.name,
        "displayName": spec.display,
        "iconName": spec.icon,
    }


def entity_record(base: str, info: EntityInfo) -> Record:
    return {
        "@odata.id": f"{base}/odata/data/entities({info.id})",
        "id": info.id,
        "name": info.spec.name,
        "displayName": info.spec.display,
        "type": "Parameter",
        "template": [{"name": c.name, "xpath": c.attr, "type": c.type} for c in info.spec.columns],
    }


def entity_value_records(ds: Dataset, base: str, info: EntityInfo, positions: I64) -> list[Record]:
    return [
        {"@odata.id": f"{base}/odata/data/entities({info.id})/values({v['id']})", **v}
        for v in ds.entity_values(info, positions)
    ]


def user_profile(base: str) -> Record:
    # The picture is never inlined: Bizagi hands out an image URL instead (reference §3).
    return {**BOUND_USER, "picture": f"{base}/odata/image?code=eyJpZFVzZXIiOiAxMn0="}


def case_column(ds: Dataset, name: str, positions: I64) -> tuple[np.ndarray, np.ndarray] | None:
    """A top-level case property as (values, null mask) for vectorised $filter, or None.

    Date-times come back as UTC instants in microseconds, as the filter compares them.
    """
    n = len(positions)
    no_nulls = np.zeros(n, dtype=bool)
    if name in ("id", "idCase"):
        return ds.case_ids(positions), no_nulls
    if name in ("creationDate", "CreationDate"):
        return ds.created[positions] * 1_000_000, no_nulls
    if name in ("estimatedSolutionDate", "SolutionDate"):
        return ds.estimated[positions] * 1_000_000, no_nulls
    if name == "solutionDate":
        solved = ds.solved[positions]
        return solved * 1_000_000, solved == NULL_TIME
    if name == "closed":
        return ds.closed[positions], no_nulls
    if name == "processName":
        names = np.array([p.spec.display for p in ds.processes], dtype=object)
        return names[ds.process[positions]], no_nulls
    if name == "caseNumber":
        prefixes = np.array([p.spec.prefix + "-" for p in ds.processes], dtype=object)
        return prefixes[ds.process[positions]] + ds.case_ids(positions).astype(str).astype(
            object
        ), no_nulls
    if name == DRIFT_ATTRIBUTE:
        drifted = ds.is_drifted(positions)
        values = np.array(ds.priorities(positions), dtype=object) if n else np.array([], object)
        return values, ~drifted
    return None
