-- Pipeline runs: when the auditor watched, over what, and what it counted.
--
-- @param since  timestamp  null  Only runs started at or after this.
-- @param until  timestamp  null  Only runs started before this.
--
-- Evidence that the audit controls were running (HIPAA 164.312(b)): each run's mode,
-- inputs, status, fingerprint key id (fingerprints from runs with different key ids do
-- not correlate) and counters. A failed or interrupted run, or a gap between runs, is a
-- period without monitoring. config_json is the effective configuration the run used, as
-- the pipeline recorded it with secrets removed: the method behind the run's findings.
SELECT
    run_id,
    started_at,
    ended_at,
    mode,
    status,
    inputs,
    fingerprint_key_id,
    auditor_version,
    events_in,
    logs_in,
    findings_out,
    dead_letters,
    late_events,
    config_json
FROM runs
WHERE ($since IS NULL OR started_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR started_at < $until::TIMESTAMPTZ)
ORDER BY started_at;
