"""$filter as the emulator serves it, checked against the ground truth computed with pandas.

Reference §3: simple operators on top-level properties, the documented lambda over
``parameters``, single-quoted string literals with doubled quotes, and Bizagi's double decoding
of $filter (reserved characters percent-encoded once, ``+`` twice as ``%252B``). What cannot be
evaluated answers 400 with Bizagi's flat error body and a message that says why.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import client_for, flat_400

from bizagi_etl.emulator import filters
from bizagi_etl.emulator.schema import props_of

CASES = "/odata/data/processes({})/cases"
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt,
    "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}  # fmt: skip


def bizagi_filter(text: str) -> str:
    """Encoded as the reference asks: reserved characters once, '+' twice (``%252B``)."""
    return quote(text, safe="").replace("%2B", "%252B")


def get_filtered(client: httpx.Client, path: str, encoded: str) -> httpx.Response:
    return client.get(f"{path}?$top=1000&$filter={encoded}")


def served(client: httpx.Client, path: str, text: str, key: str = "id") -> list[Any]:
    """Keys of every row the filter selects (collections here fit one 1000-row page)."""
    response = get_filtered(client, path, bizagi_filter(text))
    assert response.status_code == 200, f"{text}: {response.text}"
    body = response.json()
    assert "@odata.nextLink" not in body
    keys = [row[key] for row in body["value"]]
    assert body["@odata.totalCount"] == len(keys)
    assert len(set(keys)) == len(keys), "a row was served twice"
    return keys


def newest_first(frame: pd.DataFrame, column: str = "id") -> list[int]:
    return sorted(frame[column].astype(int).tolist(), reverse=True)


def json_values(frame: pd.DataFrame) -> pd.Series:
    """Parameter values from their JSON text; files-only parameters have none."""
    return frame["value"].map(lambda v: None if v is None else json.loads(v))


@pytest.fixture(scope="module")
def vacation(processes: list[dict]) -> dict:
    (found,) = [p for p in processes if p["name"] == "VacationRequest"]
    return found


@pytest.fixture(scope="module")
def vac_cases(small_truth: dict[str, pd.DataFrame], vacation: dict) -> pd.DataFrame:
    cases = small_truth["cases"]
    mine = cases[cases["process_id"] == vacation["id"]].copy()
    assert len(mine) > 100
    mine["solution_utc"] = pd.to_datetime(mine["solutionDate"], utc=True, format="ISO8601")
    return mine


@pytest.fixture(scope="module")
def vac_path(vacation: dict) -> str:
    return CASES.format(vacation["id"])


# -- comparisons on each kind of top-level property ---------------------------------------------


@pytest.mark.parametrize("op", list(OPS))
def test_number_comparisons(small_client, vac_cases, vac_path, op):
    pivot = int(vac_cases["id"].median())
    if pivot not in set(vac_cases["id"]):
        pivot = int(vac_cases["id"].iloc[len(vac_cases) // 2])
    expected = newest_first(vac_cases[OPS[op](vac_cases["id"], pivot)])
    assert expected
    assert served(small_client, vac_path, f"id {op} {pivot}") == expected


@pytest.mark.parametrize("op", ["gt", "le"])
def test_literal_on_the_left_is_flipped(small_client, vac_cases, vac_path, op):
    pivot = int(vac_cases["id"].iloc[len(vac_cases) // 3])
    # "pivot gt id" means "id lt pivot"
    expected = newest_first(vac_cases[OPS[op](pivot, vac_cases["id"])])
    assert expected
    assert served(small_client, vac_path, f"{pivot} {op} id") == expected


@pytest.mark.parametrize("op", list(OPS))
def test_string_comparisons(small_client, vac_cases, vac_path, op):
    numbers = sorted(vac_cases["caseNumber"])
    pivot = numbers[len(numbers) // 2]
    expected = newest_first(vac_cases[OPS[op](vac_cases["caseNumber"], pivot)])
    assert expected
    assert served(small_client, vac_path, f"caseNumber {op} '{pivot}'") == expected


@pytest.mark.parametrize(
    ("op", "literal"), [("eq", True), ("ne", True), ("eq", False), ("ne", False)]
)
def test_boolean_comparisons(small_client, vac_cases, vac_path, op, literal):
    expected = newest_first(vac_cases[OPS[op](vac_cases["closed"], literal)])
    assert expected
    text = f"closed {op} {str(literal).lower()}"
    assert served(small_client, vac_path, text) == expected


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_boolean_ordering_is_refused(small_client, vac_path, op):
    flat_400(get_filtered(small_client, vac_path, bizagi_filter(f"closed {op} false")), "closed")


@pytest.fixture(scope="module")
def pivot_case(vac_cases: pd.DataFrame) -> pd.Series:
    """A case created in a '+' offset zone, in the middle of the history."""
    plus = vac_cases[vac_cases["creationDate"].str.contains(r"\+0[1-9]:")]
    assert len(plus) > 10
    return plus.sort_values("creation_utc").iloc[len(plus) // 2]


@pytest.mark.parametrize("op", list(OPS))
def test_datetime_comparisons_with_the_served_offset(
    small_client, vac_cases, vac_path, pivot_case, op
):
    literal = pivot_case["creationDate"]  # e.g. 2025-09-14T10:11:12+05:30, exactly as served
    instant = pd.Timestamp(literal).tz_convert("UTC")
    assert instant == pivot_case["creation_utc"]
    expected = newest_first(vac_cases[OPS[op](vac_cases["creation_utc"], instant)])
    assert expected
    got = served(small_client, vac_path, f"creationDate {op} {literal}")
    assert got == expected
    if op == "eq":
        assert int(pivot_case["id"]) in got


@pytest.mark.parametrize(
    ("literal", "utc"),
    [
        ("2025-06-01T05:30:00+05:30", "2025-06-01T00:00:00Z"),
        ("2025-05-31T19:00:00-05:00", "2025-06-01T00:00:00Z"),
        ("2026-02-10T12:34:56.500+03:30", "2026-02-10T09:04:56.5Z"),
    ],
)
def test_datetime_literals_compare_as_instants(small_client, vac_cases, vac_path, literal, utc):
    instant = pd.Timestamp(utc)
    assert pd.Timestamp(literal) == instant
    expected = newest_first(vac_cases[vac_cases["creation_utc"] >= instant])
    assert 0 < len(expected) < len(vac_cases)
    with_offset = served(small_client, vac_path, f"creationDate ge {literal}")
    in_utc = served(small_client, vac_path, f"creationDate ge {utc}")
    assert with_offset == in_utc == expected


def test_plus_must_be_double_encoded(small_client, vac_cases, vac_path):
    text = "creationDate ge 2025-06-01T05:30:00+05:30"
    expected = newest_first(
        vac_cases[vac_cases["creation_utc"] >= pd.Timestamp("2025-06-01T00:00:00Z")]
    )
    # Built by hand: every reserved character encoded twice, so '+' travels as %252B.
    twice = quote(quote(text, safe=""), safe="")
    assert "%252B" in twice
    response = get_filtered(small_client, vac_path, twice)
    assert response.status_code == 200, response.text
    assert [row["id"] for row in response.json()["value"]] == expected
    # Encoded once, the '+' is decoded a second time into a space: not a valid expression.
    once = quote(text, safe="")
    assert "%2B" in once
    assert "%252B" not in once
    flat_400(get_filtered(small_client, vac_path, once))
    # A bare '+' is a space from the first decoding on.
    flat_400(get_filtered(small_client, vac_path, once.replace("%2B", "+")))


# -- nulls, logic and parentheses ----------------------------------------------------------------


def test_null_solution_date_is_the_open_cases(small_client, vac_cases, vac_path):
    open_cases = vac_cases[~vac_cases["closed"]]
    assert vac_cases["solutionDate"].isna().equals(~vac_cases["closed"])
    assert served(small_client, vac_path, "solutionDate eq null") == newest_first(open_cases)
    closed = vac_cases[vac_cases["closed"]]
    assert served(small_client, vac_path, "solutionDate ne null") == newest_first(closed)
    assert served(small_client, vac_path, "null eq solutionDate") == newest_first(open_cases)


def test_comparisons_with_a_null_property(small_client, vac_cases, vac_path):
    solved = vac_cases["solution_utc"]
    pivot = solved.dropna().sort_values().iloc[len(solved.dropna()) // 2]
    literal = pivot.strftime("%Y-%m-%dT%H:%M:%SZ")
    has = solved.notna()
    greater = vac_cases[has & (solved > pivot)]
    assert served(small_client, vac_path, f"solutionDate gt {literal}") == newest_first(greater)
    # ne holds for a missing value; every ordering comparison fails on it.
    not_equal = vac_cases[~has | (solved != pivot)]
    assert (~has).any()
    assert served(small_client, vac_path, f"solutionDate ne {literal}") == newest_first(not_equal)
    lower = vac_cases[has & (solved <= pivot)]
    assert served(small_client, vac_path, f"solutionDate le {literal}") == newest_first(lower)


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("closed eq false and id gt {mid}", lambda c, mid: ~c["closed"] & (c["id"] > mid)),
        ("closed eq false or id gt {mid}", lambda c, mid: ~c["closed"] | (c["id"] > mid)),
        ("not (id gt {mid})", lambda c, mid: ~(c["id"] > mid)),
        (
            "not (closed eq true) and not (id le {mid})",
            lambda c, mid: ~c["closed"] & (c["id"] > mid),
        ),
        # and binds tighter than or ...
        (
            "closed eq false or id gt {mid} and id lt {hi}",
            lambda c, mid: ~c["closed"] | ((c["id"] > mid) & (c["id"] < mid + 300)),
        ),
        # ... unless parentheses say otherwise.
        (
            "(closed eq false or id gt {mid}) and id lt {hi}",
            lambda c, mid: (~c["closed"] | (c["id"] > mid)) & (c["id"] < mid + 300),
        ),
        (
            "((id ge {mid}) and (not (caseNumber eq 'X-1') or closed eq true))",
            lambda c, mid: c["id"] >= mid,
        ),
    ],
)
def test_logic_and_parentheses(small_client, vac_cases, vac_path, text, mask):
    mid = int(vac_cases["id"].median())
    expected = newest_first(vac_cases[mask(vac_cases, mid)])
    assert 0 < len(expected) < len(vac_cases)
    assert served(small_client, vac_path, text.format(mid=mid, hi=mid + 300)) == expected


# -- string functions on top-level properties ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "test"),
    [
        ("contains(caseNumber,'-12')", lambda s: "-12" in s),
        ("startswith(caseNumber,'VAC-2')", lambda s: s.startswith("VAC-2")),
        ("endswith(caseNumber,'7')", lambda s: s.endswith("7")),
        ("not contains(caseNumber,'3')", lambda s: "3" not in s),
    ],
)
def test_string_functions_on_cases(small_client, vac_cases, vac_path, text, test):
    expected = newest_first(vac_cases[vac_cases["caseNumber"].map(test)])
    assert 0 < len(expected) < len(vac_cases)
    assert served(small_client, vac_path, text) == expected


def test_string_functions_are_case_sensitive(small_client, vac_cases, vac_path):
    display = vac_cases["processName"].iloc[0]  # "Vacation request"
    everything = newest_first(vac_cases)
    for name, head, tail in (
        ("contains", display[:5], display[:5].upper()),
        ("startswith", display[:5], display[:5].lower()),
        ("endswith", display[-5:], display[-5:].upper()),
    ):
        assert served(small_client, vac_path, f"{name}(processName,'{head}')") == everything
        assert served(small_client, vac_path, f"{name}(processName,'{tail}')") == []
    assert served(small_client, vac_path, "startswith(caseNumber,'vac-')") == []


@pytest.mark.parametrize(
    ("text", "test"),
    [
        ("name eq 'VacationRequest'", lambda p: p["name"] == "VacationRequest"),
        ("name ne 'VacationRequest'", lambda p: p["name"] != "VacationRequest"),
        ("name eq 'O''Brien'", lambda p: p["name"] == "O'Brien"),
        ("startswith(name,'C')", lambda p: p["name"].startswith("C")),
        ("endswith(name,'Request')", lambda p: p["name"].endswith("Request")),
        ("contains(displayName,'request')", lambda p: "request" in p["displayName"]),
        ("name gt 'I' and name lt 'P'", lambda p: "I" < p["name"] < "P"),
    ],
)
def test_filter_processes(small_client, small_truth, text, test):
    truth = small_truth["processes"]
    expected = set(truth.loc[truth.apply(test, axis=1), "id"])
    assert set(served(small_client, "/odata/data/processes", text)) == expected


def test_filter_processes_by_guid(small_client, small_truth, vacation):
    assert served(small_client, "/odata/data/processes", f"id eq {vacation['id']}") == [
        vacation["id"]
    ]
    upper = vacation["id"].upper()
    assert served(small_client, "/odata/data/processes", f"id eq '{upper}'") == [vacation["id"]]


def test_filter_metadata_processes(small_client, small_truth):
    truth = small_truth["processes"]
    expected = set(truth.loc[truth["processId"] > 5, "id"])
    assert 0 < len(expected) < len(truth)
    assert set(served(small_client, "/odata/metadata/processes", "processId gt 5")) == expected


# -- the documented lambda over parameters -------------------------------------------------------


def cases_with_parameter(
    truth: dict[str, pd.DataFrame], cases: pd.DataFrame, xpath: str, test: Callable[[Any], bool]
) -> list[int]:
    params = truth["case_parameters"]
    rows = params[params["xpath"] == xpath]
    hits = set(rows.loc[json_values(rows).map(test), "case_id"])
    return newest_first(cases[cases["id"].isin(hits)])


def test_lambda_with_a_doubled_quote(small_client, small_truth, vac_cases, vac_path):
    expected = cases_with_parameter(
        small_truth, vac_cases, "Reason", lambda v: isinstance(v, str) and "O'Brien" in v
    )
    assert expected
    text = "parameters/any(p:(p/xpath eq 'Reason' and contains(p/value,'O''Brien')))"
    assert served(small_client, vac_path, text) == expected


@pytest.mark.parametrize(
    ("text", "xpath", "test"),
    [
        (
            "parameters/any(p:(p/xpath eq 'Reason' and contains(p/value,'attempt')))",
            "Reason",
            lambda v: isinstance(v, str) and "attempt" in v,
        ),
        (
            "parameters/any(p:(p/xpath eq 'Days' and p/value gt 10))",
            "Days",
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 10,
        ),
        (
            "parameters/any(p:p/xpath eq 'Approved' and p/value eq true)",
            "Approved",
            lambda v: v is True,
        ),
        (
            "parameters/any(p:p/xpath eq 'Approved' and p/value eq null)",
            "Approved",
            lambda v: v is None,
        ),
        (
            "parameters/any(p:p/xpath eq 'StartDate' and p/value ge 2026-01-01T00:00:00Z)",
            "StartDate",
            lambda v: (
                isinstance(v, str)
                and pd.Timestamp(v, tz="UTC") >= pd.Timestamp("2026-01-01T00:00:00Z")
            ),
        ),
    ],
)
def test_lambda_on_cases(small_client, small_truth, vac_cases, vac_path, text, xpath, test):
    expected = cases_with_parameter(small_truth, vac_cases, xpath, test)
    assert 0 < len(expected) < len(vac_cases)
    assert served(small_client, vac_path, text) == expected


def test_lambda_combined_with_top_level_comparisons(small_client, small_truth, vac_cases, vac_path):
    in_days = cases_with_parameter(small_truth, vac_cases, "Days", lambda v: v == 10)
    expected = [i for i in in_days if i in set(vac_cases.loc[vac_cases["closed"], "id"])]
    assert expected
    text = "closed eq true and parameters/any(p:p/xpath eq 'Days' and p/value eq 10)"
    assert served(small_client, vac_path, text) == expected


@pytest.mark.parametrize(
    ("entity", "xpath", "needle"), [("Country", "Code", "C"), ("Currency", "Code", "U")]
)
def test_lambda_on_entity_values(small_client, small_truth, entity, xpath, needle):
    values = small_truth["entity_values"]
    mine = values[values["entity_name"] == entity]
    rows = mine[mine["xpath"] == xpath]
    hits = rows.loc[json_values(rows).map(lambda v: isinstance(v, str) and needle in v)]
    expected = set(hits["value_id"])
    assert 0 < len(expected) < mine["value_id"].nunique()
    (entity_id,) = set(mine["entity_id"])
    text = f"parameters/any(p:(p/xpath eq '{xpath}' and contains(p/value,'{needle}')))"
    got = served(small_client, f"/odata/data/entities({entity_id})/values", text)
    assert set(got) == expected


# -- other collections ---------------------------------------------------------------------------


def test_filter_the_inbox(small_client, small_truth):
    inbox = small_truth["inbox"]
    created = pd.to_datetime(inbox["CreationDate"], utc=True, format="ISO8601")
    pivot = created.sort_values().iloc[len(created) // 2]
    literal = pivot.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = set(inbox.loc[created >= pivot, "idCase"])
    assert 0 < len(expected) < len(inbox)
    for resource in ("cases", "casesWithWorkitems"):
        got = served(
            small_client, f"/odata/data/{resource}", f"CreationDate ge {literal}", "idCase"
        )
        assert set(got) == expected, resource
    vac = set(inbox.loc[inbox["caseNumber"].str.startswith("VAC-"), "idCase"])
    text = "startswith(caseNumber,'VAC-')"
    assert set(served(small_client, "/odata/data/cases", text, "idCase")) == vac


def test_filter_workitems_of_a_case(small_client, small_truth):
    items = small_truth["workitems"]
    case_id = int(items.groupby("case_id").size().idxmax())
    mine = items[items["case_id"] == case_id]
    state = mine["state"].iloc[0]
    expected = mine.loc[mine["state"] == state, "id"].tolist()
    got = served(small_client, f"/odata/data/cases({case_id})/workitems", f"state eq '{state}'")
    assert got == expected
    got = served(small_client, f"/odata/data/cases({case_id})/workitems", f"state ne '{state}'")
    assert got == mine.loc[mine["state"] != state, "id"].tolist()


def test_same_filter_on_the_two_inbox_resources_is_typed_for_each(make_server):
    """/cases has parameters and no workitems; /casesWithWorkitems the other way round."""
    with make_server() as server, client_for(server) as client:
        on_parameters = bizagi_filter("parameters/any(p:p/xpath eq 'Reason')")
        assert get_filtered(client, "/odata/data/cases", on_parameters).status_code == 200
        flat_400(
            get_filtered(client, "/odata/data/casesWithWorkitems", on_parameters), "parameters"
        )
        on_items = bizagi_filter("workitems/any(w:w/state eq 'red')")
        assert get_filtered(client, "/odata/data/casesWithWorkitems", on_items).status_code == 200
        flat_400(get_filtered(client, "/odata/data/cases", on_items), "workitems")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("foo eq 1", ["foo"]),
        ("creationDate ge 2025-01-01", ["creationDate", "DateTimeOffset"]),
        ("id eq 'abc'", ["id", "string"]),
        ("caseNumber eq 12", ["caseNumber", "number"]),
        ("creationDate ge 2025-01-01T00:00:00", ["offset"]),
        ("id eq", ["not a valid OData expression"]),
        ("id eq 1 and", ["not a valid OData expression"]),
        ("(id eq 1", ["not a valid OData expression"]),
        ("caseNumber eq 'unterminated", ["not a valid OData expression"]),
        ("substringof('a',caseNumber)", ["substringof"]),
        ("contains(id,'1')", ["id"]),
        ("contains(caseNumber,5)", ["contains"]),
        ("solutionDate gt null", ["null"]),
        ("id in (1001,1002)", ["In"]),
        ("parameters eq 'x'", ["parameters"]),
        ("parameters/any(p:p/nope/deeper eq 'x')", []),
    ],
)
def test_bad_filters_answer_a_flat_400(small_client, vac_path, text, words):
    flat_400(get_filtered(small_client, vac_path, bizagi_filter(text)), *words)


# -- the filter module on plain records ----------------------------------------------------------

RECORDS = [
    {"id": 1, "caseNumber": "A-1", "creationDate": "2025-01-01T00:00:00+00:00",
     "solutionDate": None, "processName": None, "closed": False,
     "parameters": [{"xpath": "Reason", "value": None}, {"xpath": "Days", "value": 3}]},
    {"id": 2, "caseNumber": "A-2", "creationDate": "2025-01-02T00:00:00-05:00",
     "solutionDate": "2025-02-01T00:00:00-05:00", "processName": "Leave", "closed": True,
     "parameters": [{"xpath": "Reason", "value": "x"}, {"xpath": "Days", "value": 8}]},
    {"id": 3, "caseNumber": "A-3", "creationDate": "1969-12-31T23:59:59.500000+00:00",
     "solutionDate": "2025-03-01T00:00:00Z", "processName": "Leave", "closed": True,
     "parameters": []},
]  # fmt: skip


def run(text: str, records: list[dict[str, Any]] = RECORDS) -> list[bool]:
    source = filters.Source(
        type_name="case", props=props_of("case"), size=len(records), records=lambda: records
    )
    mask = filters.evaluate(filters.parse(text), source)
    assert isinstance(mask, np.ndarray)
    assert mask.dtype == bool
    return mask.tolist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("solutionDate eq null", [True, False, False]),
        ("solutionDate ne null", [False, True, True]),
        ("solutionDate ne 2025-02-01T05:00:00Z", [True, False, True]),  # null: ne is true
        ("solutionDate eq 2025-02-01T05:00:00Z", [False, True, False]),
        ("solutionDate gt 2000-01-01T00:00:00Z", [False, True, True]),  # null: gt is false
        ("solutionDate lt 2100-01-01T00:00:00Z", [False, True, True]),
        ("solutionDate ge 2025-02-01T00:00:00-05:00", [False, True, True]),
        ("solutionDate le 2025-02-01T10:30:00+05:30", [False, True, False]),
        ("not (solutionDate gt 2000-01-01T00:00:00Z)", [True, False, False]),
        ("processName ne 'Leave'", [True, False, False]),
        ("processName eq 'Leave'", [False, True, True]),
        ("processName lt 'Zzz'", [False, True, True]),
        ("contains(processName,'ea')", [False, True, True]),
        ("not contains(processName,'ea')", [True, False, False]),
        ("parameters/any(p:p/xpath eq 'Reason' and p/value ne 'x')", [True, False, False]),
        ("parameters/any(p:p/xpath eq 'Reason' and p/value eq null)", [True, False, False]),
        ("parameters/any(p:p/value gt 3)", [False, True, False]),  # null and 'x' never gt
        ("parameters/all(p:p/xpath ne 'Nope')", [True, True, True]),  # vacuous for []
        ("parameters/any()", [True, True, False]),
    ],
)
def test_filter_module_null_semantics(text, expected):
    assert run(text) == expected


def test_filter_module_matches_both_offsets_of_one_instant():
    # Record 2 was created at 2025-01-02T05:00:00Z.
    assert run("creationDate eq 2025-01-02T05:00:00Z") == [False, True, False]
    assert run("creationDate eq 2025-01-02T10:30:00+05:30") == [False, True, False]
    assert run("creationDate gt 2025-01-02T04:59:59Z") == [False, True, False]


def test_filter_module_orders_instants_before_1970():
    # 1969-12-31T23:59:59.5Z is half a second before the epoch, so before 1970-01-01.
    assert run("creationDate lt 1970-01-01T00:00:00Z") == [False, False, True]
    assert run("creationDate gt 1969-12-31T23:59:59Z") == [True, True, True]


@pytest.mark.parametrize(
    "text",
    [
        "nope eq 1",
        "creationDate gt 2025-01-01",
        "id eq 'x'",
        "closed gt true",
        "length(caseNumber) eq 3",
    ],
)
def test_filter_module_errors(text):
    with pytest.raises(filters.FilterError):
        run(text)


def test_filter_module_parse_errors():
    with pytest.raises(filters.FilterError, match="not a valid OData expression"):
        filters.parse("id eq eq 1")
