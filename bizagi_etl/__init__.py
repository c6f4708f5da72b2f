"""bizagi-etl: land a Bizagi project's OData API in Parquet and DuckDB."""

__version__ = "0.1.0"

__all__ = ["__version__"]
