"""Query options from values: typed literals, checked names, encoding Bizagi decodes twice."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from urllib.parse import unquote_plus

import pytest

from bizagi_etl.connector import odata
from bizagi_etl.connector.errors import SettingsError
from bizagi_etl.connector.settings import BizagiSettings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (1e20, "100000000000000000000"),
        (1e-7, "0.0000001"),
        (Decimal("12.3400"), "12.3400"),
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        ("", "''"),
        (dt.date(2025, 3, 4), "2025-03-04"),
        (uuid.UUID("3F2B8C1E-6D4A-4F0E-9B7A-2C5D1E8F9A10"), "3f2b8c1e-6d4a-4f0e-9b7a-2c5d1e8f9a10"),
        (dt.datetime(2025, 3, 4, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
         "2025-03-04T00:00:00Z"),
        (dt.datetime(2025, 3, 4, 0, 0, 0, 250, tzinfo=dt.UTC), "2025-03-04T00:00:00.000250Z"),
    ],
)  # fmt: skip
def test_literals(value, expected):
    assert odata.literal(value) == expected


@pytest.mark.parametrize("value", [dt.datetime(2025, 1, 1), float("nan"), float("inf"), object()])
def test_values_without_a_safe_literal_are_refused(value):
    with pytest.raises(SettingsError):
        odata.literal(value)


@pytest.mark.parametrize(
    "name", ["name eq 'x' or 1 eq 1", "a;b", "x)", "", "1abc", "a//b", "id eq 1", "id\n"]
)
def test_property_names_cannot_carry_expressions(name):
    with pytest.raises(SettingsError, match="property name"):
        odata.compare(name, "eq", 1)


def test_operators_are_checked():
    with pytest.raises(SettingsError, match="operator"):
        odata.compare("id", "eq 1 or id", 2)


def test_window_is_half_open_in_utc():
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    text = odata.window("creationDate", start, end)
    assert text == "creationDate ge 2025-01-01T00:00:00Z and creationDate lt 2025-01-02T00:00:00Z"
    with pytest.raises(SettingsError, match="before"):
        odata.window("creationDate", end, start)


def test_a_hostile_value_stays_one_literal():
    text = odata.compare("name", "eq", "x' or name ne 'y")
    assert text == "name eq 'x'' or name ne ''y'"


def test_filter_encoding_survives_bizagis_double_decoding():
    rng = random.Random(5)
    alphabet = "ab +%&=?#'\"/\\:,()éü東🚀\n\t;$@!*~-_.%2B%25"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        encoded = odata.encode_filter(text)
        assert "+" not in encoded
        assert "&" not in encoded
        assert unquote_plus(unquote_plus(encoded)) == text


def test_query_string_keeps_dollar_readable():
    query = odata.query_string({"$top": 100, "$skip": 0, "$count": True, "$filter": "a eq 'b c'"})
    assert query == "$top=100&$skip=0&$count=true&$filter=a%20eq%20'b%20c'"


def test_client_url_quotes_paths(small_server):
    from bizagi_etl.connector.client import BizagiClient

    settings = BizagiSettings(
        base_url=small_server.base_url, client_id="c", client_secret="s", page_size=5
    )
    with BizagiClient(settings) as client:
        url = client.url("/odata/data/searchByCaseNumber(caseNumber='A B')", {"$top": 1})
        assert url == (
            f"{small_server.base_url}/odata/data/searchByCaseNumber(caseNumber='A%20B')?$top=1"
        )
        with pytest.raises(ValueError, match="path"):
            client.url("https://elsewhere.example/odata")
