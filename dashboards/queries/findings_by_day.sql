-- Findings per day by detector and severity, with how many are still open.
--
-- @param since     timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until     timestamp  null  End of the period, exclusive.
-- @param detector  text       null  Only this detector (leaked_token, phi_in_logs, ...).
--
-- The overview an officer starts from. open counts findings with no decision recorded
-- (or reopened); reviewed counts those with at least one review entry.
WITH reviewed AS (
    SELECT
        finding_id,
        arg_max(action, struct_pack(t := reviewed_at, id := review_id))
            FILTER (WHERE action <> 'comment') AS last_decision
    FROM reviews
    GROUP BY finding_id
)
SELECT
    CAST(date_trunc('day', f.observed_at) AS DATE) AS day,
    f.detector,
    f.severity,
    count(*) AS findings,
    CAST(sum(f.count) AS BIGINT) AS occurrences,
    count(r.finding_id) AS reviewed,
    count(*) FILTER (WHERE r.last_decision IS NULL OR r.last_decision = 'reopen') AS open
FROM findings AS f
LEFT JOIN reviewed AS r USING (finding_id)
WHERE ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
  AND ($detector IS NULL OR f.detector = $detector)
GROUP BY day, f.detector, f.severity, f.severity_rank
ORDER BY day DESC, f.detector, f.severity_rank DESC;
