-- Schema v2: a ledger of retention runs.
-- An auditor asks not only what is kept but what was removed, when and under which policy.
-- Each `auditor retention` writes one row, in the same transaction as its deletions, even
-- when nothing was past its horizon (evidence that the policy runs); dry runs write nothing. Archive files carry the retention_id in their
-- names, so the ledger also says which Parquet files hold what a run removed.

CREATE TABLE retention_runs (
    retention_id            VARCHAR PRIMARY KEY,
    ran_at                  TIMESTAMPTZ NOT NULL,
    events_before           TIMESTAMPTZ NOT NULL,   -- events with time before this were pruned
    dead_letters_before     TIMESTAMPTZ NOT NULL,
    evidence_before         TIMESTAMPTZ NOT NULL,   -- findings observed before this lost their evidence
    findings_before         TIMESTAMPTZ NOT NULL,   -- findings (and their reviews, alerts) out of the compliance period
    events_deleted          BIGINT NOT NULL,
    dead_letters_deleted    BIGINT NOT NULL,
    evidence_blanked        BIGINT NOT NULL,
    findings_deleted        BIGINT NOT NULL,
    reviews_deleted         BIGINT NOT NULL,
    alerts_deleted          BIGINT NOT NULL,
    runs_deleted            BIGINT NOT NULL,
    archive_dir             VARCHAR,                -- where pruned rows went as Parquet, or NULL
    auditor_version         VARCHAR NOT NULL
);

COMMENT ON COLUMN findings.evidence IS
    'Redacted excerpt. NULL means retention removed it (see retention_runs); empty means the detector gave none.';
