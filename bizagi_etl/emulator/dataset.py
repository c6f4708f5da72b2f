"""The emulated project's rows, generated from the seed.

Cases live as numpy columns (a million of them fit in tens of megabytes and generate in about a
second). Everything wider, a case's parameters, its workitems, the values of parameter entities,
is drawn on demand from ``hashrng`` for exactly the rows a request needs, so memory does not grow
with what clients read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from bizagi_etl.emulator import hashrng, vocab
from bizagi_etl.emulator.claims import Claims
from bizagi_etl.emulator.config import EmulatorConfig
from bizagi_etl.emulator.model import (
    DRIFT_PARAM,
    DRIFT_PRIORITIES,
    ENTITIES,
    PROCESSES,
    STAKEHOLDERS,
    Entity,
    Param,
    Process,
)

I64 = npt.NDArray[np.int64]
NULL_TIME = np.iinfo(np.int64).min  # "no solution date yet"
FIRST_CASE_ID = 1001
FIRST_WORKITEM_ID = 500_001

# UTC offsets (minutes) that case dates carry, weighted towards the Americas and Europe.
OFFSETS = np.array([-300, -360, -180, -240, 0, 60, 120, 210, 330, 345, 540], dtype=np.int64)
OFFSET_WEIGHTS = np.array([30, 10, 10, 5, 10, 12, 5, 4, 6, 2, 6], dtype=np.float64)
OFFSET_TEXT = [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in OFFSETS]


def epoch_seconds(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def format_local(seconds: I64, offset_codes: I64) -> list[str | None]:
    """Instants (UTC seconds) as Bizagi writes them: local wall time plus the offset."""
    local = seconds + OFFSETS[offset_codes] * 60
    text = np.datetime_as_string(local.astype("datetime64[s]"), unit="s").tolist()
    missing = seconds == NULL_TIME
    return [
        None if gone else f"{t}{OFFSET_TEXT[c]}"
        for t, c, gone in zip(text, offset_codes.tolist(), missing.tolist(), strict=True)
    ]


def format_naive(seconds: I64) -> list[str]:
    """Parameter dates carry no offset (reference §3)."""
    out: list[str] = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").tolist()
    return out


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A process with the identifiers the emulator gave it."""

    index: int
    spec: Process
    id: str  # GUID of the process
    entity_id: str  # GUID of its process entity (@processEntityKey, @bizagi.entity)
    number: int  # integer processId of the metadata service
    param_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntityInfo:
    index: int
    spec: Entity
    id: str


class Dataset:
    """Every row the emulator serves. Mutations (``add_case``) bump ``version``."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.now = epoch_seconds(config.end)  # the emulator's clock: the end of the history
        self.drift_at = epoch_seconds(config.drift_date) if config.drift_date else None
        self.processes = [self._process_info(i, p) for i, p in enumerate(PROCESSES)]
        self.entities = [
            EntityInfo(i, e, hashrng.guid(self.seed, "entity", i)) for i, e in enumerate(ENTITIES)
        ]
        self.entity_by_name = {e.spec.name: e for e in self.entities}
        self.stakeholder_ids = [hashrng.guid(self.seed, "stakeholder", i) for i in range(5)]
        assert len(self.stakeholder_ids) == len(STAKEHOLDERS)
        self.version = 0
        self.mutations = 0
        self._generate_cases(config.cases)
        self.claims = Claims(self.seed, config.claims, epoch_seconds(config.start), self.now)

    # -- model ---------------------------------------------------------------------------------

    def _process_info(self, index: int, spec: Process) -> ProcessInfo:
        param_ids = tuple(
            hashrng.guid(self.seed, f"param/{spec.name}/{p.attr}", 0) for p in spec.params
        )
        return ProcessInfo(
            index=index,
            spec=spec,
            id=hashrng.guid(self.seed, "process", index),
            entity_id=hashrng.guid(self.seed, "process-entity", index),
            number=index + 1,
            param_ids=param_ids,
        )

    # -- cases ---------------------------------------------------------------------------------

    def _generate_cases(self, n: int) -> None:
        start, end = epoch_seconds(self.config.start), self.now
        draw = np.arange(n, dtype=np.int64)
        days = (end - start) // 86_400
        day_of_history = np.arange(days)
        weekday = (np.datetime64(self.config.start) + day_of_history).astype("datetime64[D]")
        is_weekend = ((weekday.astype(np.int64) + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        growth = 0.7 + 0.6 * day_of_history / max(days, 1)  # business grows over the history
        day = hashrng.choice(self.seed, "case/day", draw, np.where(is_weekend, 0.25, 1.0) * growth)
        offset = hashrng.choice(self.seed, "case/offset", draw, OFFSET_WEIGHTS)
        office = hashrng.uniform(self.seed, "case/office", draw) < 0.85
        local = np.where(
            office,
            8 * 3600 + hashrng.integers(self.seed, "case/tod", draw, 0, 10 * 3600),
            hashrng.integers(self.seed, "case/tod", draw, 0, 86_400),
        )
        created = start + day * 86_400 + local - OFFSETS[offset] * 60
        created = np.clip(created, start, end - 1)
        order = np.argsort(created, kind="stable")
        self.created = created[order]
        self.offset = offset[order]
        self.process = hashrng.choice(
            self.seed, "case/process", draw, [p.weight for p in PROCESSES]
        )
        self._derive_outcomes(0)

    def _derive_outcomes(self, first: int) -> None:
        """Estimated and actual solution of cases[first:], from their creation and process."""
        ids = FIRST_CASE_ID + np.arange(first, len(self.created), dtype=np.int64)
        created = self.created[first:]
        sla = np.array([p.sla_hours * 3600 for p in PROCESSES], dtype=np.int64)[
            self.process[first:]
        ]
        estimated = created + sla
        u = hashrng.uniform(self.seed, "case/duration", ids)
        duration = (-np.log1p(-u) * sla * 0.9).astype(np.int64) + 600
        stale = hashrng.uniform(self.seed, "case/stale", ids) < 0.03  # forgotten, never closed
        closed = (created + duration <= self.now) & ~stale
        solved = np.where(closed, created + duration, NULL_TIME)
        if first == 0:
            self.estimated, self.solved, self.closed = estimated, solved, closed
        else:
            self.estimated = np.concatenate([self.estimated, estimated])
            self.solved = np.concatenate([self.solved, solved])
            self.closed = np.concatenate([self.closed, closed])

    @property
    def case_count(self) -> int:
        return len(self.created)

    def case_ids(self, positions: I64) -> I64:
        return positions + FIRST_CASE_ID

    def position_of(self, case_id: int) -> int | None:
        position = case_id - FIRST_CASE_ID
        return position if 0 <= position < self.case_count else None

    def add_case(self) -> int:
        """A case created while clients page (``--mutate-rate``). Returns its id."""
        self.mutations += 1
        position = self.case_count
        key = np.array([position], dtype=np.int64)
        self.created = np.append(self.created, self.now + 37 * self.mutations)
        self.offset = np.append(
            self.offset, hashrng.choice(self.seed, "case/offset", key, OFFSET_WEIGHTS)
        )
        self.process = np.append(
            self.process,
            hashrng.choice(self.seed, "case/process", key, [p.weight for p in PROCESSES]),
        )
        self._derive_outcomes(position)
        self.closed[position] = False  # it was created a moment ago
        self.solved[position] = NULL_TIME
        self.version += 1
        self.__dict__.pop("_indexes", None)
        return position + FIRST_CASE_ID

    @cached_property
    def _indexes(self) -> tuple[list[I64], I64, I64]:
        """Per-process positions and open positions (newest first), and workitem offsets."""
        newest_first = np.arange(self.case_count - 1, -1, -1, dtype=np.int64)
        by_process = [newest_first[self.process[newest_first] == p.index] for p in self.processes]
        open_positions = newest_first[~self.closed[newest_first]]
        counts = np.where(
            self.closed,
            0,
            hashrng.integers(
                self.seed,
                "workitem/count",
                self.case_ids(np.arange(self.case_count, dtype=np.int64)),
                1,
                7,
            ),
        )
        first_workitem = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
        return by_process, open_positions, np.stack([first_workitem, counts])

    def process_positions(self, process_index: int) -> I64:
        return self._indexes[0][process_index]

    def open_positions(self) -> I64:
        return self._indexes[1]

    def all_positions(self) -> I64:
        return np.arange(self.case_count - 1, -1, -1, dtype=np.int64)

    def is_drifted(self, positions: I64) -> npt.NDArray[np.bool_]:
        if self.drift_at is None:
            return np.zeros(len(positions), dtype=bool)
        return self.created[positions] >= self.drift_at

    def priorities(self, positions: I64) -> list[str]:
        codes = hashrng.integers(self.seed, "case/priority", self.case_ids(positions), 0, 4)
        return [DRIFT_PRIORITIES[c] for c in codes.tolist()]

    # -- case parameters -----------------------------------------------------------------------

    def case_parameters(self, positions: I64) -> list[list[dict[str, Any]]]:
        """``parameters`` of each case, as ``[{"xpath", "value"}]`` in the process's order."""
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(positions))]
        processes = self.process[positions]
        drifted = self.is_drifted(positions)
        for info in self.processes:
            rows = np.flatnonzero(processes == info.index)
            if not len(rows):
                continue
            ids = self.case_ids(positions[rows])
            created = self.created[positions[rows]]
            columns = [
                self.draw_values(p, f"case/{info.spec.name}/{p.attr}", ids, created)
                for p in info.spec.params
            ]
            for j, row in enumerate(rows.tolist()):
                out[row] = [
                    {"xpath": p.attr, "value": col[j]}
                    for p, col in zip(info.spec.params, columns, strict=True)
                ]
                if info.spec.with_files:
                    out[row].append({"xpath": "Attachment", "files": []})
        for row in np.flatnonzero(drifted).tolist():
            position = positions[row : row + 1]
            value = self.draw_values(
                DRIFT_PARAM, "case/drift", self.case_ids(position), self.created[position]
            )[0]
            out[row].append({"xpath": DRIFT_PARAM.attr, "value": value})
        return out

    # -- workitems -----------------------------------------------------------------------------

    def workitems(self, position: int) -> list[dict[str, Any]]:
        """Pending workitems of one case; closed cases have none."""
        first, count = self._indexes[2][:, position].tolist()
        info = self.processes[int(self.process[position])]
        tasks = info.spec.tasks
        case_id = position + FIRST_CASE_ID
        task0 = int(hashrng.integers(self.seed, "workitem/task", [case_id], 0, len(tasks))[0])
        step = info.spec.sla_hours * 3600 // len(tasks)
        items = []
        for j in range(count):
            due = int(self.created[position]) + step * (j + 1)
            left = due - self.now
            state = "red" if left < 0 else "yellow" if left < 86_400 else "green"
            task = tasks[(task0 + j) % len(tasks)]
            params = info.spec.params[j % len(info.spec.params) :][:2]
            items.append(
                {
                    "id": FIRST_WORKITEM_ID + first + j,
                    "taskName": task.name,
                    "taskDisplayName": task.display,
                    "state": state,
                    "SolutionDate": format_local(
                        np.array([due]), self.offset[position : position + 1]
                    )[0],
                    "parameters": [self._param_ref(info, p) for p in params],
                }
            )
        return items

    def _param_ref(self, info: ProcessInfo, param: Param) -> dict[str, str]:
        i = info.spec.params.index(param)
        return {
            "id": info.param_ids[i],
            "name": param.name,
            "xpath": f"{info.spec.name}.{param.attr}",
            "type": param.type,
        }

    def process_parameters(self, info: ProcessInfo) -> list[dict[str, str]]:
        return [self._param_ref(info, p) for p in info.spec.params]

    def process_template(self, info: ProcessInfo) -> list[dict[str, str]]:
        return [
            {"name": p.name, "xpath": f"{info.spec.name}.{p.attr}", "type": p.type}
            for p in info.spec.params[:3]
        ]

    # -- parameter entities --------------------------------------------------------------------

    def entity_value_ids(self, entity: EntityInfo, positions: I64) -> list[str]:
        return hashrng.guids(self.seed, f"entity/{entity.spec.name}/value", positions)

    def entity_values(self, entity: EntityInfo, positions: I64) -> list[dict[str, Any]]:
        """Values of a parameter entity, ``{"id", "parameters": [...]}`` with ``dsbl`` last."""
        keys = positions.astype(np.int64)
        base = np.full(len(keys), self.now, dtype=np.int64)
        columns = [
            self.draw_values(c, f"entity/{entity.spec.name}/{c.attr}", keys, base)
            for c in entity.spec.columns
        ]
        disabled = hashrng.uniform(self.seed, f"entity/{entity.spec.name}/dsbl", keys) < 0.03
        ids = self.entity_value_ids(entity, keys)
        return [
            {
                "id": ids[j],
                "parameters": [
                    *(
                        {"xpath": c.attr, "value": col[j]}
                        for c, col in zip(entity.spec.columns, columns, strict=True)
                    ),
                    {"xpath": "dsbl", "value": bool(disabled[j])},
                ],
            }
            for j in range(len(keys))
        ]

    # -- value generation ----------------------------------------------------------------------

    def draw_values(self, param: Param, stream: str, keys: I64, anchor: I64) -> list[Any]:
        """Values of one attribute for many rows; ``anchor`` dates relative generators."""
        kind, _, arg = param.gen.partition(":")
        values = self._draw(kind, arg, stream, keys, anchor)
        u = hashrng.uniform(self.seed, stream + "/null", keys)
        nulls = (u < param.null_share).tolist()
        empties = (u < param.null_share + param.empty_share).tolist()
        return [
            None if null else "" if empty else v
            for v, null, empty in zip(values, nulls, empties, strict=True)
        ]

    def _draw(self, kind: str, arg: str, stream: str, keys: I64, anchor: I64) -> list[Any]:
        seed = self.seed
        if kind in _PICKS:
            words = _PICKS[kind]
            return [words[i] for i in hashrng.integers(seed, stream, keys, 0, len(words)).tolist()]
        if kind in _BY_INDEX:
            table = _BY_INDEX[kind]
            return [table[i % len(table)] for i in keys.tolist()]
        if kind == "text":
            return _texts(seed, stream, keys)
        if kind == "person":
            first = hashrng.integers(seed, stream + "/f", keys, 0, len(vocab.FIRST_NAMES)).tolist()
            last = hashrng.integers(seed, stream + "/l", keys, 0, len(vocab.LAST_NAMES)).tolist()
            return [
                f"{vocab.FIRST_NAMES[a]} {vocab.LAST_NAMES[b]}"
                for a, b in zip(first, last, strict=True)
            ]
        if kind == "product":
            adj = hashrng.integers(seed, stream + "/a", keys, 0, len(vocab.PRODUCT_ADJECTIVES))
            noun = hashrng.integers(seed, stream + "/n", keys, 0, len(vocab.PRODUCT_NOUNS))
            return [
                f"{vocab.PRODUCT_ADJECTIVES[a]} {vocab.PRODUCT_NOUNS[b]} {k % 997}"
                for a, b, k in zip(adj.tolist(), noun.tolist(), keys.tolist(), strict=True)
            ]
        if kind == "invoice":
            return [f"INV-{n:07d}" for n in hashrng.integers(seed, stream, keys, 1, 10**7).tolist()]
        if kind == "sku":
            return [f"SKU-{k:06d}" for k in keys.tolist()]
        if kind == "int":
            lo, hi = (int(x) for x in arg.split(":"))
            return hashrng.integers(seed, stream, keys, lo, hi + 1).tolist()
        if kind == "bigint":
            return hashrng.integers(seed, stream, keys, 1, 9 * 10**12).tolist()
        if kind in ("money", "decimal", "float"):
            lo_f, hi_f = (float(x) for x in arg.split(":"))
            raw = lo_f + hashrng.uniform(seed, stream, keys) * (hi_f - lo_f)
            digits = {"money": 2, "decimal": 4}.get(kind)
            return (np.round(raw, digits) if digits else raw).tolist()
        if kind == "bool":
            return (hashrng.uniform(seed, stream, keys) < 0.5).tolist()
        if kind == "date":
            lo, hi = (int(x) for x in arg.split(":"))
            days = hashrng.integers(seed, stream, keys, lo, hi + 1)
            midnight = anchor - anchor % 86_400
            return format_naive(midnight + days * 86_400)
        if kind == "entity":
            entity = self.entity_by_name[arg]
            picks = hashrng.integers(seed, stream, keys, 0, entity.spec.size)
            return self.entity_value_ids(entity, picks)
        raise ValueError(f"unknown value generator {kind!r} for stream {stream!r}")


def _texts(seed: int, stream: str, keys: I64) -> list[str]:
    n = hashrng.integers(seed, stream + "/n", keys, 1, 4).tolist()
    picks = [
        hashrng.integers(seed, f"{stream}/{i}", keys, 0, len(vocab.WORDS)).tolist()
        for i in range(3)
    ]
    return [" ".join(vocab.WORDS[picks[i][j]] for i in range(count)) for j, count in enumerate(n)]


_PICKS: dict[str, tuple[str, ...]] = {
    "company": vocab.COMPANIES,
    "category": vocab.CATEGORIES,
    "channel": vocab.CHANNELS,
    "position": vocab.POSITIONS,
}

_BY_INDEX: dict[str, tuple[str, ...]] = {
    "country_code": tuple(c for c, _ in vocab.COUNTRIES),
    "country_name": tuple(n for _, n in vocab.COUNTRIES),
    "currency_code": tuple(c for c, _ in vocab.CURRENCIES),
    "currency_name": tuple(n for _, n in vocab.CURRENCIES),
    "department_code": tuple(c for c, _ in vocab.DEPARTMENTS),
    "department_name": tuple(n for _, n in vocab.DEPARTMENTS),
}
