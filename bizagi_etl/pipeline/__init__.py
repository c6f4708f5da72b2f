"""The pipeline: streams of a project -> typed Arrow batches -> Parquet lake -> DuckDB.

Built on ``bizagi_etl.connector``; never imported by it. Modules load on first use, so an
extraction does not import duckdb and a CLI start-up does not import pyarrow.
"""

from typing import TYPE_CHECKING

from bizagi_etl.lazy import lazy_exports

_EXPORTS = {
    "bizagi_etl.pipeline.schema": ("Col", "safe_name", "unique_names"),
    "bizagi_etl.pipeline.names": ("check_identifier",),
    "bizagi_etl.pipeline.streams": (
        "BUILTIN", "BUILTIN_KIND", "CUSTOM", "DAILY", "ENTITY", "ENTITY_VALUES", "FAMILY",
        "SNAPSHOT", "Catalog", "Child", "Stream", "custom_streams", "entity_stream",
    ),
    "bizagi_etl.pipeline.frames": (
        "combine", "defer_pandas", "empty_table", "freeze_imports", "to_table",
        "use_system_allocator",
    ),
    "bizagi_etl.pipeline.lake": (
        "Lake",
        "PartitionWriter",
        "WrittenPartition",
        "extracted_at_of",
        "open_lake",
    ),
    "bizagi_etl.pipeline.warehouse": ("SCHEMA", "VIEWS", "Warehouse"),
    "bizagi_etl.pipeline.extract": (
        "ExtractResult", "Progress", "chunk_days_for", "count_at_source", "count_window",
        "day_chunks",
        "extract_stream", "load_result", "midnight", "ordered_map", "resolve_streams",
    ),
    "bizagi_etl.pipeline.runner": ("RunReport", "refresh_views", "run"),
    "bizagi_etl.pipeline.dataframes": (
        "page_frames", "partition_frames", "read_frame", "to_frame",
    ),
    "bizagi_etl.pipeline.sync": (
        "MOVED", "NEW", "OPEN", "SyncPlan", "SyncReport", "deleted_table", "key_typer",
        "landed_days", "plan_sync", "stale_partitions", "sync_stream",
    ),
    "bizagi_etl.pipeline.settings": (
        "DEFAULT_MEMORY_LIMIT", "PIPELINE_ENV_VARS", "PipelineSettings",
    ),
}  # fmt: skip
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, {n: m for m, names in _EXPORTS.items() for n in names})

if TYPE_CHECKING:
    from bizagi_etl.pipeline.dataframes import (
        page_frames,
        partition_frames,
        read_frame,
        to_frame,
    )
    from bizagi_etl.pipeline.extract import (
        ExtractResult,
        Progress,
        chunk_days_for,
        count_at_source,
        count_window,
        day_chunks,
        extract_stream,
        load_result,
        midnight,
        ordered_map,
        resolve_streams,
    )
    from bizagi_etl.pipeline.frames import (
        combine,
        defer_pandas,
        empty_table,
        freeze_imports,
        to_table,
        use_system_allocator,
    )
    from bizagi_etl.pipeline.lake import (
        Lake,
        PartitionWriter,
        WrittenPartition,
        extracted_at_of,
        open_lake,
    )
    from bizagi_etl.pipeline.names import check_identifier
    from bizagi_etl.pipeline.runner import RunReport, refresh_views, run
    from bizagi_etl.pipeline.schema import Col, safe_name, unique_names
    from bizagi_etl.pipeline.settings import (
        DEFAULT_MEMORY_LIMIT,
        PIPELINE_ENV_VARS,
        PipelineSettings,
    )
    from bizagi_etl.pipeline.streams import (
        BUILTIN,
        BUILTIN_KIND,
        CUSTOM,
        DAILY,
        ENTITY,
        ENTITY_VALUES,
        FAMILY,
        SNAPSHOT,
        Catalog,
        Child,
        Stream,
        custom_streams,
        entity_stream,
    )
    from bizagi_etl.pipeline.sync import (
        MOVED,
        NEW,
        OPEN,
        SyncPlan,
        SyncReport,
        deleted_table,
        key_typer,
        landed_days,
        plan_sync,
        stale_partitions,
        sync_stream,
    )
    from bizagi_etl.pipeline.warehouse import SCHEMA, VIEWS, Warehouse
