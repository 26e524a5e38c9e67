"""Query results written as a terminal table, CSV, JSON or Parquet.

Times are written in UTC: ISO 8601 in CSV and JSON, ``YYYY-MM-DD HH:MM:SSZ`` in tables
(a person reading a terminal does not need microseconds). Tables truncate long cells;
the other formats never do.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "OutputFormat",
    "cell_text",
    "json_value",
    "write_csv",
    "write_json",
    "write_parquet",
    "write_table",
]

MAX_CELL: Final = 48


class OutputFormat(StrEnum):
    """How ``auditor query`` writes its rows."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


def json_value(value: object) -> object:  # noqa: PLR0911 - one return per cell type
    """A JSON-ready form of one cell."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def cell_text(value: object, *, for_table: bool = False) -> str:
    """The text of one cell for tables and CSV."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime) and for_table:
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(v, for_table=for_table) for v in value)
    rendered = json_value(value)
    return rendered if isinstance(rendered, str) else str(rendered)


def _is_numeric(column: pa.ChunkedArray[Any]) -> bool:
    import pyarrow as pa

    kind = column.type
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def _clip(text: str) -> str:
    flat = text.replace("\n", " ").replace("\t", " ")
    return flat if len(flat) <= MAX_CELL else flat[: MAX_CELL - 1] + "…"


def write_table(table: pa.Table, out: IO[str]) -> None:
    """Aligned columns for a terminal, numbers right-aligned, then a row count."""
    names = table.column_names
    numeric = [_is_numeric(table.column(i)) for i in range(table.num_columns)]
    rows = [
        [_clip(cell_text(v, for_table=True)) for v in row.values()] for row in table.to_pylist()
    ]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out.write(line(names) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(line(row) + "\n")
    out.write(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})\n")


def write_csv(table: pa.Table, out: IO[str]) -> None:
    """RFC 4180 CSV with a header row; times in ISO 8601 UTC."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([cell_text(v) for v in row.values()])


def write_json(table: pa.Table, out: IO[str]) -> None:
    """A JSON array of objects, one row per line."""
    rows = table.to_pylist()
    out.write("[")
    for i, row in enumerate(rows):
        out.write(("," if i else "") + "\n" + json.dumps(json_value(row), ensure_ascii=False))
    out.write("\n]\n" if rows else "]\n")


def write_parquet(table: pa.Table, out: IO[bytes]) -> None:
    """Parquet (zstd), readable by DuckDB, pandas and every data lake."""
    import pyarrow.parquet as pq

    pq.write_table(table, out, compression="zstd")
