"""The emulated project's rows, generated from the seed, as they stand at the emulator's clock.

Cases live as numpy columns (a million of them fit in tens of megabytes and generate in about a
second): when each is created, closes and is deleted (``timeline``), its time zone and process.
The world at the clock's instant T is a set of masks over those columns: a case exists from its
creation until its deletion, is closed from its close instant on. Everything wider, a case's
parameters, its workitems, the values of parameter entities, is drawn on demand from
``hashrng`` for exactly the rows a request needs, as of T, so memory does not grow with what
clients read.

The clock only moves forward (``set_now``). The cases that arrive after the history's end are
generated, whole days at a time, as the clock reaches them; ``--mutate-rate`` cases are created
at the clock's instant and take ids from ``MUTATED_FIRST_ID`` on, after every generated one.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from bizagi_etl.emulator import hashrng, timeline, vocab
from bizagi_etl.emulator.claims import Claims
from bizagi_etl.emulator.config import EmulatorConfig, as_instant
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
from bizagi_etl.emulator.timeline import DAY, CasePlan, ValueTimeline

I64 = npt.NDArray[np.int64]
NULL_TIME = np.iinfo(np.int64).min  # "no solution date yet"
FIRST_CASE_ID = 1001
MUTATED_FIRST_ID = 900_000_001  # cases created while clients page (--mutate-rate)
WORKITEM_ID_FACTOR = 10  # workitem j of case c has id c * 10 + j

# UTC offsets (minutes) that case dates carry, weighted towards the Americas and Europe.
OFFSETS = np.array([-300, -360, -180, -240, 0, 60, 120, 210, 330, 345, 540], dtype=np.int64)
OFFSET_WEIGHTS = np.array([30, 10, 10, 5, 10, 12, 5, 4, 6, 2, 6], dtype=np.float64)
OFFSET_TEXT = [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in OFFSETS]
PROCESS_WEIGHTS = [p.weight for p in PROCESSES]
_TASKS = np.array([len(p.tasks) for p in PROCESSES], dtype=np.uint64)  # tasks per process
_STEPS = np.array([p.sla_hours * 3600 // len(p.tasks) for p in PROCESSES], dtype=np.int64)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_seconds(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def instant_seconds(instant: dt.datetime) -> int:
    """An aware instant as whole UTC seconds (rounded down)."""
    return (instant - _EPOCH) // dt.timedelta(seconds=1)


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
    """Every row the emulator serves, as of ``now``.

    Moving the clock (``set_now``) or creating a case (``add_case``) bumps ``version``; both
    hold ``lock``, which the server also holds while it answers a request, so a request sees
    one instant from its first row to its last.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.start = epoch_seconds(config.start)
        self.end = epoch_seconds(config.end)  # the history's end: new cases arrive after it
        self.now = instant_seconds(config.clock())  # the clock, read once (UTC seconds)
        self.drift_at = epoch_seconds(config.drift_date) if config.drift_date else None
        self.lock = threading.RLock()
        self.processes = [self._process_info(i, p) for i, p in enumerate(PROCESSES)]
        self.entities = [
            EntityInfo(i, e, hashrng.guid(self.seed, "entity", i)) for i, e in enumerate(ENTITIES)
        ]
        self.entity_by_name = {e.spec.name: e for e in self.entities}
        self.stakeholder_ids = [hashrng.guid(self.seed, "stakeholder", i) for i in range(5)]
        assert len(self.stakeholder_ids) == len(STAKEHOLDERS)
        self.version = 0
        self.mutations = 0
        self._sla = np.array([p.sla_hours * 3600 for p in PROCESSES], dtype=np.int64)
        self._value_timelines: dict[int, ValueTimeline] = {}
        self._value_positions: dict[int, I64] = {}
        self._generate_history(config.cases)
        self._extend_to(self.now)
        self._derive()
        # Claims do not move with the clock: their history ends where the cases' history does.
        self.claims = Claims(self.seed, config.claims, self.start, self.end)

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

    # -- the clock -----------------------------------------------------------------------------

    @property
    def now_instant(self) -> dt.datetime:
        """The clock as an aware UTC date-time."""
        return _EPOCH + dt.timedelta(seconds=self.now)

    def set_now(self, instant: dt.datetime | dt.date) -> dt.datetime:
        """Serve the world as it stands at ``instant`` (a date is its midnight UTC).

        The clock only moves forward: an earlier instant raises ``ValueError``, and so does one
        outside the range the settings allow (``EmulatorConfigError``).
        """
        moment = as_instant(instant)
        self.config.check_now(moment)
        seconds = instant_seconds(moment)
        with self.lock:
            if seconds < self.now:
                shown, asked = self.now_instant.isoformat(), moment.isoformat()
                raise ValueError(
                    f"the emulator's clock only moves forward: it shows {shown}, {asked} is earlier"
                )
            if seconds > self.now:
                self._extend_to(seconds)
                self.now = seconds
                self._derive()
                self.version += 1
        return self.now_instant

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        with self.lock:
            return self.set_now(self.now_instant + delta)

    # -- cases ---------------------------------------------------------------------------------

    def _generate_history(self, n: int) -> None:
        """The history: cases created over [start, end), exactly ``n`` of them left at ``end``.

        Candidates are drawn one by one (each a pure function of its draw number); some are
        deleted before ``end``, and drawing stops at the n-th that is not.
        """
        start, end = self.start, self.end
        days = (end - start) // DAY
        day_of_history = np.arange(days)
        weekday_weight = timeline.day_weights(start // DAY + day_of_history)
        growth = 0.7 + 0.6 * day_of_history / max(days, 1)  # business grows over the history
        # After the history, day k receives this many cases on average, times its weekday weight.
        self.daily_rate = n / days / float(weekday_weight.mean())
        draws = n + 64 + int(n * 3 * timeline.DELETE_SHARE)
        while True:
            draw = np.arange(draws, dtype=np.int64)
            day = hashrng.choice(self.seed, "case/day", draw, weekday_weight * growth)
            offset = hashrng.choice(self.seed, "case/offset", draw, OFFSET_WEIGHTS)
            office = hashrng.uniform(self.seed, "case/office", draw) < timeline.OFFICE_SHARE
            local = np.where(
                office,
                8 * 3600 + hashrng.integers(self.seed, "case/tod", draw, 0, 10 * 3600),
                hashrng.integers(self.seed, "case/tod", draw, 0, DAY),
            )
            created = start + day * DAY + local - OFFSETS[offset] * 60
            created = np.clip(created, start, end - 1)
            deleted = timeline.deleted_at(self.seed, "case/deleted", draw, created)
            left = np.cumsum(deleted > end)
            if n == 0 or (len(left) and left[-1] >= n):
                take = int(np.searchsorted(left, n)) + 1 if n else 0
                break
            draws *= 2
        order = np.argsort(created[:take], kind="stable")
        self.created = created[:take][order]
        self.offset = offset[:take][order]
        self.deleted_at = deleted[:take][order]
        self.process = hashrng.choice(
            self.seed, "case/process", np.arange(take, dtype=np.int64), PROCESS_WEIGHTS
        )
        sla = self._sla[self.process]
        self.estimated = self.created + sla
        ids = FIRST_CASE_ID + np.arange(take, dtype=np.int64)
        self.closes_at = timeline.closes_at(self.seed, ids, self.created, sla)
        self.generated = take  # cases of the arrival process so far; mutated ones follow
        self.days_after_end = 0  # whole days after the history generated so far

    def _extend_to(self, instant: int) -> None:
        """Generate the days after the history up to the one holding ``instant``."""
        need = max(0, -(-(instant - self.end) // DAY))
        if need <= self.days_after_end:
            return
        block = timeline.arrivals(
            self.seed, self.end, self.days_after_end, need, self.daily_rate, OFFSETS,
            OFFSET_WEIGHTS, PROCESS_WEIGHTS,
        )  # fmt: skip
        first, count = self.generated, len(block.created)
        if first + count + FIRST_CASE_ID >= MUTATED_FIRST_ID:
            raise ValueError("the emulator ran out of case ids: move the clock less far")
        ids = FIRST_CASE_ID + np.arange(first, first + count, dtype=np.int64)
        sla = self._sla[block.process]
        columns = {
            "created": block.created,
            "offset": block.offset,
            "process": block.process,
            "estimated": block.created + sla,
            "closes_at": timeline.closes_at(self.seed, ids, block.created, sla),
            "deleted_at": block.deleted_at,
        }
        for name, column in columns.items():
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old[:first], column, old[first:]]))
        self.generated += count
        self.days_after_end = need

    def _derive(self) -> None:
        """The state of every case at the clock's instant."""
        self.exists = (self.created <= self.now) & (self.deleted_at > self.now)
        self.closed = self.closes_at <= self.now
        self.solved = np.where(self.closed, self.closes_at, NULL_TIME)
        self.__dict__.pop("_indexes", None)
        self._value_positions.clear()

    @property
    def size(self) -> int:
        """Rows in the case columns: also the deleted, the not yet created, the mutated."""
        return len(self.created)

    @property
    def case_count(self) -> int:
        """Cases that exist at the clock's instant."""
        return len(self._indexes[2])

    def case_ids(self, positions: I64) -> I64:
        positions = np.asarray(positions, dtype=np.int64)
        return np.where(
            positions < self.generated,
            positions + FIRST_CASE_ID,
            positions - self.generated + MUTATED_FIRST_ID,
        )

    def position_of(self, case_id: int) -> int | None:
        """The position of a case that exists at the clock's instant, else None."""
        if FIRST_CASE_ID <= case_id < FIRST_CASE_ID + self.generated:
            position = case_id - FIRST_CASE_ID
        elif MUTATED_FIRST_ID <= case_id < MUTATED_FIRST_ID + self.mutations:
            position = self.generated + case_id - MUTATED_FIRST_ID
        else:
            return None
        return position if bool(self.exists[position]) else None

    def add_case(self) -> int:
        """A case created at the clock's instant while clients page (``--mutate-rate``).

        Returns its id."""
        with self.lock:
            case_id = MUTATED_FIRST_ID + self.mutations
            self.mutations += 1
            key = np.array([case_id], dtype=np.int64)
            created = np.array([self.now], dtype=np.int64)
            process = hashrng.choice(self.seed, "case/process", key, PROCESS_WEIGHTS)
            sla = self._sla[process]
            columns = {
                "created": created,
                "offset": hashrng.choice(self.seed, "case/offset", key, OFFSET_WEIGHTS),
                "process": process,
                "estimated": created + sla,
                "closes_at": timeline.closes_at(self.seed, key, created, sla),
                "deleted_at": timeline.deleted_at(self.seed, "mutation/deleted", key, created),
            }
            for name, column in columns.items():
                setattr(self, name, np.concatenate([getattr(self, name), column]))
            self._derive()
            self.version += 1
            return case_id

    @cached_property
    def _indexes(self) -> tuple[list[I64], I64, I64]:
        """Positions of existing cases (newest first): per process, the open ones, all."""
        newest_first = np.ascontiguousarray(np.flatnonzero(self.exists)[::-1], dtype=np.int64)
        by_process = [newest_first[self.process[newest_first] == p.index] for p in self.processes]
        open_positions = newest_first[~self.closed[newest_first]]
        return by_process, open_positions, newest_first

    def process_positions(self, process_index: int) -> I64:
        return self._indexes[0][process_index]

    def open_positions(self) -> I64:
        return self._indexes[1]

    def all_positions(self) -> I64:
        """Every case that exists at the clock's instant, newest first."""
        return self._indexes[2]

    def is_drifted(self, positions: I64) -> npt.NDArray[np.bool_]:
        if self.drift_at is None:
            return np.zeros(len(positions), dtype=bool)
        return self.created[positions] >= self.drift_at

    def priorities(self, positions: I64) -> list[str]:
        codes = hashrng.integers(self.seed, "case/priority", self.case_ids(positions), 0, 4)
        return [DRIFT_PRIORITIES[c] for c in codes.tolist()]

    def plans(self, positions: I64) -> CasePlan:
        """The lives of some cases: their workitems and when parameters are decided, revised."""
        return timeline.plan(
            self.seed,
            self.case_ids(positions),
            self.created[positions],
            self._sla[self.process[positions]],
            self.closes_at[positions],
        )

    # -- case parameters -----------------------------------------------------------------------

    def case_parameters(self, positions: I64) -> list[list[dict[str, Any]]]:
        """``parameters`` of each case as of the clock, ``[{"xpath", "value"}]`` in order.

        A process's ``decided`` attributes are null until the task that decides them completes;
        its ``revised`` attributes take another value once a later task completes (some cases).
        """
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(positions))]
        processes = self.process[positions]
        drifted = self.is_drifted(positions)
        plan = self.plans(positions)
        undecided = plan.decided_at > self.now
        revised = plan.revised_at <= self.now
        for info in self.processes:
            rows = np.flatnonzero(processes == info.index)
            if not len(rows):
                continue
            ids = self.case_ids(positions[rows])
            created = self.created[positions[rows]]
            columns = []
            for p in info.spec.params:
                stream = f"case/{info.spec.name}/{p.attr}"
                column = self.draw_values(p, stream, ids, created)
                if p.attr in info.spec.decided:
                    hidden = undecided[rows].tolist()
                    column = [None if h else v for v, h in zip(column, hidden, strict=True)]
                elif p.attr in info.spec.revised:
                    column = self._revise(p, stream, ids, created, column, revised[rows])
                columns.append(column)
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

    def _revise(
        self,
        param: Param,
        stream: str,
        keys: I64,
        anchor: I64,
        values: list[Any],
        changed: npt.NDArray[np.bool_],
    ) -> list[Any]:
        """``values`` with the ``changed`` rows replaced by their second value."""
        rows = np.flatnonzero(changed)
        if not len(rows):
            return values
        first = [values[r] for r in rows.tolist()]
        second = self.second_values(param, stream, keys[rows], anchor[rows], first)
        out = list(values)
        for r, v in zip(rows.tolist(), second, strict=True):
            out[r] = v
        return out

    def second_values(
        self, param: Param, stream: str, keys: I64, anchor: I64, first: list[Any]
    ) -> list[Any]:
        """What an attribute changes to: never null, and never its first value for booleans,
        integers and dates (other kinds are redrawn, so equal only by rare chance)."""
        kind, _, arg = param.gen.partition(":")
        if kind == "bool":
            return [not v if isinstance(v, bool) else True for v in first]
        if kind in ("int", "date"):
            lo, hi = (int(x) for x in arg.split(":"))
            span = hi - lo + 1
            drawn = hashrng.integers(self.seed, stream, keys, lo, hi + 1)
            step = hashrng.integers(self.seed, stream + "/second", keys, 1, span) if span > 1 else 0
            moved = lo + (drawn - lo + step) % span
            if kind == "int":
                out: list[Any] = moved.tolist()
                return out
            return list(format_naive(anchor - anchor % DAY + moved * DAY))
        return self._draw(kind, arg, stream + "/second", keys, anchor)

    # -- workitems -----------------------------------------------------------------------------

    def workitems(self, position: int) -> list[dict[str, Any]]:
        """Workitems of one case pending at the clock's instant; a closed case has none."""
        return self.workitems_of(np.array([position], dtype=np.int64))[0]

    def workitems_of(self, positions: I64) -> list[list[dict[str, Any]]]:
        """Pending workitems of each case, drawn for all of them at once.

        Workitem j of a case is its process's task ``task0 + j`` (round robin from a drawn
        first task), due ``created + (j + 1) * SLA / tasks``: red once overdue at the clock,
        yellow within a day of it, green before.
        """
        plan = self.plans(positions)
        ids = self.case_ids(positions)
        processes = self.process[positions]
        task0 = hashrng.bits(self.seed, "workitem/task", ids) % _TASKS[processes]
        appears, completes, exists = plan.schedule()
        rows, index = np.nonzero(exists & (appears <= self.now) & (self.now < completes))
        dues = plan.created[rows] + _STEPS[processes[rows]] * (index + 1)
        texts = format_local(dues, self.offset[positions][rows])
        tasks = ((task0[rows] + index.astype(np.uint64)) % _TASKS[processes[rows]]).tolist()
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(positions))]
        case_ids, kinds = ids.tolist(), processes.tolist()
        for row, j, due, text, t in zip(
            rows.tolist(), index.tolist(), dues.tolist(), texts, tasks, strict=True
        ):
            info = self.processes[kinds[row]]
            task = info.spec.tasks[t]
            left = due - self.now
            out[row].append(
                {
                    "id": case_ids[row] * WORKITEM_ID_FACTOR + j,
                    "taskName": task.name,
                    "taskDisplayName": task.display,
                    "state": "red" if left < 0 else "yellow" if left < 86_400 else "green",
                    "SolutionDate": text,
                    "parameters": [
                        self._param_ref(info, p)
                        for p in info.spec.params[j % len(info.spec.params) :][:2]
                    ],
                }
            )
        return out

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

    def value_timeline(self, entity: EntityInfo) -> ValueTimeline:
        """When each value of an entity changes and is removed (fixed by the settings)."""
        found = self._value_timelines.get(entity.index)
        if found is None:
            changeable = [
                i
                for i, c in enumerate(entity.spec.columns)
                if i > 0 and c.gen.partition(":")[0] not in _FIXED
            ]
            found = timeline.value_timeline(
                self.seed, entity.spec.name, entity.spec.size, changeable, self.start, self.end
            )
            self._value_timelines[entity.index] = found
        return found

    def entity_positions(self, entity: EntityInfo) -> I64:
        """Positions of the values of an entity that exist at the clock's instant."""
        found = self._value_positions.get(entity.index)
        if found is None:
            removed_at = self.value_timeline(entity).removed_at
            found = np.flatnonzero(removed_at > self.now).astype(np.int64)
            self._value_positions[entity.index] = found
        return found

    def value_positions(self, entity: EntityInfo) -> int:
        """How many value positions an entity has: also the values removed before the end."""
        return len(self.value_timeline(entity).removed_at)

    def entity_value_exists(self, entity: EntityInfo, position: int) -> bool:
        return bool(self.value_timeline(entity).removed_at[position] > self.now)

    def entity_value_ids(self, entity: EntityInfo, positions: I64) -> list[str]:
        return hashrng.guids(self.seed, f"entity/{entity.spec.name}/value", positions)

    def entity_values(self, entity: EntityInfo, positions: I64) -> list[dict[str, Any]]:
        """Values of a parameter entity as of the clock, ``{"id", "parameters"}``, ``dsbl`` last.

        A changed value shows its second value of one attribute from the instant it changed.
        """
        keys = positions.astype(np.int64)
        base = np.full(len(keys), self.end, dtype=np.int64)  # dates relative to the history's end
        story = self.value_timeline(entity)
        changed = story.changed_at[keys] <= self.now
        which = story.changed_column[keys]
        columns = []
        for i, c in enumerate(entity.spec.columns):
            stream = f"entity/{entity.spec.name}/{c.attr}"
            column = self.draw_values(c, stream, keys, base)
            columns.append(self._revise(c, stream, keys, base, column, changed & (which == i)))
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

# Kinds that name a value (codes, names by index, SKUs): they never change.
_FIXED = {*_BY_INDEX, "sku"}
