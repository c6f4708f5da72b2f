"""The analytics views, applied by Warehouse.apply_sql in file-name order (see README.md).

A package only so that the wheel ships these files as ``bizagi_etl.sql``.
"""
