"""Dagster code location for bizagi-etl: thin orchestration over the ``bizagi_etl`` library."""
