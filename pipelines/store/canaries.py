"""Canary checks: prove that planted secrets never reached a store.

Plant known fake tokens and PHI values in the input, run the pipeline, then look for them
in two ways, because each alone can miss:

- the bytes of the database file, its WAL and every file beside it that starts with its
  name (DuckDB's spill folder, the writer's advert): this sees deleted rows left in free
  blocks and rows not yet checkpointed, but not strings DuckDB compressed (FSST or
  dictionary compression can hide most copies of a string in a checkpointed file);
- every text, list and struct column of every table, through ``open_store`` (so it works
  while a writer runs): this sees every live row, compressed or not.

Reports name the canary's label and where it was found, never its value.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from auditor.errors import InputError
from pipelines.store.access import open_store
from pipelines.store.endpoint import SOCKET_SUFFIX


@dataclass(frozen=True, slots=True)
class CanaryHit:
    """Where one canary was found."""

    label: str
    where: str

    def __str__(self) -> str:
        return f"{self.label} in {self.where}"


def find_canaries(
    db_path: str | PathLike[str], canaries: Mapping[str, str] | Sequence[str]
) -> list[CanaryHit]:
    """Every place a canary occurs in the store's files or rows.

    Args:
        db_path: The database file.
        canaries: Values to look for, labelled (``{"jwt": "eyJ…"}``) or not (labelled
            ``canary #0``, ``canary #1`` … in order).

    Raises:
        InputError: There is no database at ``db_path``.
    """
    db = Path(db_path).resolve()
    if not db.exists():
        raise InputError(f"no audit database at {db}")
    labelled = _labelled(canaries)
    hits: list[CanaryHit] = []
    for path in _store_files(db):
        hits.extend(_scan_bytes(path, labelled))
    hits.extend(_scan_rows(db, labelled))
    return hits


def assert_no_canaries(
    db_path: str | PathLike[str], canaries: Mapping[str, str] | Sequence[str]
) -> None:
    """Fail when any canary is in the store's files or rows.

    Raises:
        AssertionError: Naming each canary's label and where it was found.
    """
    hits = find_canaries(db_path, canaries)
    if hits:
        listed = "; ".join(str(hit) for hit in hits)
        raise AssertionError(f"{len(hits)} canary hit(s) in {db_path}: {listed}")


def _labelled(canaries: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(canaries, Mapping):
        labelled = {str(k): str(v) for k, v in canaries.items()}
    else:
        labelled = {f"canary #{i}": str(v) for i, v in enumerate(canaries)}
    if any(len(value) < 8 for value in labelled.values()):  # noqa: PLR2004 - see message
        raise ValueError("canaries shorter than 8 characters would match by chance")
    return labelled


def _store_files(db: Path) -> Iterator[Path]:
    for path in sorted(db.parent.glob(f"{db.name}*")):
        if path.name.endswith(SOCKET_SUFFIX) or path.is_socket():
            continue
        if path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            yield path


def _scan_bytes(path: Path, canaries: Mapping[str, str]) -> Iterator[CanaryHit]:
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            for label, value in canaries.items():
                offset = data.find(value.encode("utf-8"))
                if offset >= 0:
                    yield CanaryHit(label, f"file {path.name} at byte {offset}")
    except FileNotFoundError:
        return  # a WAL checkpointed away while we looked


def _scan_rows(db: Path, canaries: Mapping[str, str]) -> Iterator[CanaryHit]:
    labels = list(canaries)
    params = {f"c{i}": canaries[label] for i, label in enumerate(labels)}
    with open_store(db) as store:
        columns = store.query(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'main' AND (data_type LIKE '%VARCHAR%' "
            "OR data_type LIKE '%[]' OR data_type LIKE 'STRUCT%' OR data_type LIKE 'MAP%') "
            "ORDER BY table_name, ordinal_position"
        ).to_pylist()
        by_table: dict[str, list[str]] = {}
        for row in columns:
            by_table.setdefault(str(row["table_name"]), []).append(str(row["column_name"]))
        # One query per table counts every canary in every text column.
        for table, names in by_table.items():
            counts = ", ".join(
                f"count(*) FILTER (WHERE contains(CAST({_ident(n)} AS VARCHAR), $c{i})) "
                f'AS "{i}:{k}"'
                for k, n in enumerate(names)
                for i in range(len(labels))
            )
            sql = f"SELECT {counts} FROM {_ident(table)}"  # noqa: S608 - catalog names, quoted
            found = store.query(sql, params).to_pylist()[0]
            for key, count in found.items():
                if count:
                    i, k = (int(part) for part in key.split(":"))
                    where = f"table {table}, column {names[k]} ({count} rows)"
                    yield CanaryHit(labels[i], where)


def _ident(name: str) -> str:
    # Names come from the catalog, not from input; quoting keeps odd ones valid SQL.
    return '"' + name.replace('"', '""') + '"'


__all__ = ["CanaryHit", "assert_no_canaries", "find_canaries"]
