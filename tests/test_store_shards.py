"""Past one writer: shards are separate store files, and DuckDB reads them all at once.

These run the SQL that the README's "Scaling past one machine" section documents, so the
documented recipes cannot rot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import store_support as support

from pipelines.store import Batch, Horizon, RetentionPolicy, StoreWriter, open_store

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _shard(db, partition):
    """A store whose writer owned one partition of the stream."""
    with StoreWriter.open(db, serve=False) as writer:
        for batch, _ in support.batches({0: 0, 1: 0}, 40, 80):
            mine = [e for e in batch.events if e.origin and f"/{partition}@" in e.origin]
            writer.write_batch(Batch(events=mine, offsets={("cds.authz", partition): 40}))


def test_stopped_shards_are_attached_read_only_and_queried_as_one(tmp_path):
    shards = [tmp_path / "shard-0.duckdb", tmp_path / "shard-1.duckdb"]
    for partition, db in enumerate(shards):
        _shard(db, partition)
    conn = duckdb.connect()
    for i, db in enumerate(shards):
        conn.execute(f"ATTACH '{db}' AS shard{i} (READ_ONLY)")
    rows = conn.execute(
        "SELECT client_iss, count(*) FROM (SELECT * FROM shard0.events "
        "UNION ALL BY NAME SELECT * FROM shard1.events) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    conn.close()
    assert rows == [("https://ehr-0.example.org", 36), ("https://ehr-1.example.org", 36)]


def test_live_shards_are_queried_through_their_writers_and_combined(tmp_path):
    shards = [tmp_path / "shard-0.duckdb", tmp_path / "shard-1.duckdb"]
    for partition, db in enumerate(shards):
        _shard(db, partition)
    writers = [StoreWriter.open(db) for db in shards]  # each shard has its live writer
    try:
        parts = []
        for db in shards:
            with open_store(db) as store:
                parts.append(
                    store.query(
                        "SELECT client_iss, count(*) AS n FROM events WHERE time >= ? GROUP BY ALL",
                        [support.BASE],
                    )
                )
    finally:
        for writer in writers:
            writer.close()
    conn = duckdb.connect()
    conn.register("combined", pa.concat_tables(parts))
    total = conn.sql("SELECT client_iss, sum(n) AS n FROM combined GROUP BY ALL ORDER BY 1")
    assert total.fetchall() == [
        ("https://ehr-0.example.org", 36),
        ("https://ehr-1.example.org", 36),
    ]


def test_archives_of_every_shard_read_as_one_hive_dataset(tmp_path):
    shards = [tmp_path / "shard-0.duckdb", tmp_path / "shard-1.duckdb"]
    for partition, db in enumerate(shards):
        _shard(db, partition)
        with open_store(db, write=True) as store:
            # The stream's events are from November 2026; a 1-day horizon archives them all.
            store.apply_retention(
                RetentionPolicy(events=Horizon.parse("1d")),
                now=NOW + timedelta(days=60),
                archive=tmp_path / "archive" / f"shard={partition}",
            )
    conn = duckdb.connect()
    rows = conn.execute(
        "SELECT shard, count(*) AS n, count(DISTINCT day) AS days "
        "FROM read_parquet(?, hive_partitioning = true, union_by_name = true) "
        "GROUP BY ALL ORDER BY 1",
        [f"{tmp_path}/archive/*/events/*/*.parquet"],
    ).fetchall()
    conn.close()
    assert rows == [(0, 36, 1), (1, 36, 1)]
