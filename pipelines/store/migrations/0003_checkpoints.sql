-- Schema v3: checkpoints of the embedded pipeline's stream detectors.
-- `auditor run --input` writes the state of its stream detectors here, in the same
-- transaction as the rows and input positions of a batch, so a run killed at any point
-- resumes with exactly the state it had at its last checkpoint and re-reads its input from
-- the positions stored with it (rows already stored are not stored twice). The state never
-- holds an event's attributes or detail: the pipeline strips them before detection.

CREATE TABLE detector_checkpoints (
    stream              VARCHAR PRIMARY KEY,       -- the input stream, e.g. 'embedded'
    positions_json      VARCHAR NOT NULL,          -- {"file:/abs/path": next line, ...} of this state
    state               BLOB NOT NULL,             -- pipelines.runtime snapshot (HMAC-authenticated when keyed)
    state_bytes         BIGINT NOT NULL,
    written_at          TIMESTAMPTZ NOT NULL,
    run_id              VARCHAR
);
