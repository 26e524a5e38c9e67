-- One finding in full, without its evidence text: what, where, when, and alerts sent.
--
-- @param finding_id  text  required  The finding's id (32 hex digits).
--
-- Everything a reviewer needs to judge one incident, except the redacted evidence excerpt
-- and the detector's facts: those are free text that came from inspected content, which
-- no named query returns (the dashboard reads them separately and masks them again).
-- fingerprint_key_id is the key the fingerprint was made with; alerts counts the alerts
-- sent for the finding's revisions, last_alert_at the latest.
SELECT
    f.finding_id,
    f.detector,
    f.rule,
    f.kind,
    f.severity,
    f.observed_at,
    f.title,
    f.client_iss,
    f.service_id,
    f.fingerprint,
    nullif(split_part(f.fingerprint, ':', 1), '') AS fingerprint_key_id,
    f.location,
    f.origin,
    f.event_ids,
    f.safeguard,
    f.reference,
    f.window_start,
    f.window_end,
    f.count,
    f.revision,
    f.first_stored_at,
    f.last_stored_at,
    f.run_id,
    (SELECT count(*) FROM alerts AS a WHERE a.finding_id = f.finding_id) AS alerts,
    (SELECT max(a.sent_at) FROM alerts AS a WHERE a.finding_id = f.finding_id) AS last_alert_at
FROM findings AS f
WHERE f.finding_id = $finding_id;
