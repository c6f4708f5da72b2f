"""pandas DataFrames with Arrow-backed dtypes, where users touch the data.

The pipeline stays in Arrow; this module is the only one that imports pandas.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow-backed pandas: nulls, decimals and UTC timestamps survive the trip."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)
