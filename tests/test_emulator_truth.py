"""Ground truth equals what paging the server returns, resource by resource."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner
from conftest import page_all

from bizagi_etl.cli import main


def _j(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _frame(rows: list[dict], columns: list[str], key: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(key).reset_index(drop=True)


def _same(served: pd.DataFrame, truth: pd.DataFrame, key: list[str]) -> None:
    truth = truth[served.columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(served, truth, check_dtype=False)


def _served_cases(client, processes) -> list[dict]:
    rows = []
    for process in processes:
        for case in page_all(
            client, f"/odata/data/processes({process['id']})/cases", {"$top": 1000}
        ):
            rows.append({**case, "process_id": process["id"]})
    return rows


def test_cases_and_parameters_equal_paging(small_client, processes, small_truth):
    served = _served_cases(small_client, processes)
    columns = ["id", "process_id", "caseNumber", "creationDate", "estimatedSolutionDate",
               "solutionDate", "processName", "closed"]  # fmt: skip
    _same(_frame(served, columns, ["id"]), small_truth["cases"], ["id"])
    keys = [c["@processEntityKey"] for c in served]
    assert len(set(keys)) == len(processes)
    params = [
        {"case_id": c["id"], "position": i, "xpath": p["xpath"],
         "value": _j(p["value"]) if "value" in p else None,
         "files": _j(p["files"]) if "files" in p else None}
        for c in served
        for i, p in enumerate(c["parameters"])
    ]  # fmt: skip
    truth = small_truth["case_parameters"].copy()
    # Truth JSON comes from orjson; compare parsed values, not spellings of the same number.
    truth["value"] = truth["value"].map(lambda v: _j(json.loads(v)) if isinstance(v, str) else None)
    _same(
        _frame(params, list(truth.columns), ["case_id", "position"]), truth, ["case_id", "position"]
    )


def test_workitems_and_inbox_equal_paging(small_client, small_truth):
    inbox = page_all(small_client, "/odata/data/casesWithWorkitems", {"$top": 1000})
    items = [
        {"case_id": c["idCase"], **{k: v for k, v in w.items() if k != "@odata.id"},
         "parameters": _j(w["parameters"])}
        for c in inbox
        for w in c["workitems"]
    ]  # fmt: skip
    truth = small_truth["workitems"].copy()
    truth["parameters"] = truth["parameters"].map(lambda v: _j(json.loads(v)))
    _same(_frame(items, list(truth.columns), ["id"]), truth, ["id"])
    cases = page_all(small_client, "/odata/data/cases", {"$top": 1000})
    columns = ["idCase", "caseNumber", "CreationDate", "SolutionDate"]
    _same(_frame(cases, columns, ["idCase"]), small_truth["inbox"], ["idCase"])


def test_entity_values_equal_paging(small_client, small_truth):
    entities = small_client.get("/odata/data/entities").json()["value"]
    rows = []
    for entity in entities:
        for value in page_all(
            small_client, f"/odata/data/entities({entity['id']})/values", {"$top": 1000}
        ):
            for i, p in enumerate(value["parameters"]):
                rows.append({"entity_id": entity["id"], "value_id": value["id"], "position": i,
                             "xpath": p["xpath"], "value": _j(p["value"])})  # fmt: skip
    truth = small_truth["entity_values"].copy()
    truth["value"] = truth["value"].map(lambda v: _j(json.loads(v)))
    key = ["entity_id", "value_id", "position"]
    _same(_frame(rows, ["entity_id", "value_id", "position", "xpath", "value"], key), truth, key)


def test_small_resources_equal_paging(small_client, small_truth):
    meta = small_client.get("/odata/metadata/processes").json()["value"]
    processes = [
        {**{k: v for k, v in p.items() if k != "@odata.id"},
         "parameters": _j(p["parameters"]), "template": _j(p["template"])}
        for p in meta
    ]  # fmt: skip
    truth = small_truth["processes"].copy()
    for column in ("parameters", "template"):
        truth[column] = truth[column].map(lambda v: _j(json.loads(v)))
    _same(_frame(processes, list(truth.columns), ["id"]), truth, ["id"])
    stakeholders = small_client.get("/odata/data/stakeholders").json()["value"]
    _same(_frame(stakeholders, list(small_truth["stakeholders"].columns), ["id"]),
          small_truth["stakeholders"], ["id"])  # fmt: skip
    entities = [
        {**e, "template": _j(e["template"])}
        for e in small_client.get("/odata/data/entities").json()["value"]
    ]
    truth = small_truth["entities"].copy()
    truth["template"] = truth["template"].map(lambda v: _j(json.loads(v)))
    _same(_frame(entities, list(truth.columns), ["id"]), truth, ["id"])


def test_cli_exports_truth_and_exits(tmp_path):
    result = CliRunner().invoke(
        main,
        ["emulator", "--export-truth", str(tmp_path), "--cases", "400", "--seed", "3",
         "--start", "2026-01-01", "--end", "2026-11-01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cases = pq.read_table(tmp_path / "cases.parquet")
    assert cases.num_rows == 400
    assert "cases                   400 rows" in result.output
    expected = {"processes", "stakeholders", "user_profile", "entities", "entity_values", "cases",
                "case_parameters", "workitems", "inbox", "claims"}  # fmt: skip
    assert {p.stem for p in tmp_path.glob("*.parquet")} == expected
    assert pq.read_table(tmp_path / "entity_values.parquet").num_rows > 100_000
