-- Validation-failure anomalies with their baseline and score.
--
-- @param since      timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until      timestamp  null  End of the period, exclusive.
-- @param client     text       null  Only this client iss.
-- @param service    text       null  Only this CDS service id.
-- @param min_score  float      null  Only anomalies scoring at least this much.
--
-- One row per validation_anomaly incident. The detector records the expected level as
-- the fact `baseline` (failures per window) and the departure from it as `score`
-- (a z-score or its robust equivalent) in facts_json; both are NULL for rules without a
-- baseline (first appearance of a reason, attack signatures). count is the failures in
-- the incident's window.
WITH decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
),
anomalies AS (
    SELECT
        f.*,
        TRY_CAST(json_extract_string(f.facts_json, '$.baseline') AS DOUBLE) AS baseline,
        TRY_CAST(json_extract_string(f.facts_json, '$.score') AS DOUBLE) AS score
    FROM findings AS f
    WHERE f.detector = 'validation_anomaly'
)
SELECT
    a.observed_at,
    coalesce(a.client_iss, '(unknown)') AS client_iss,
    coalesce(a.service_id, '(any)') AS service_id,
    a.rule,
    a.kind,
    a.window_start,
    a.window_end,
    a.count,
    a.baseline,
    a.score,
    a.severity,
    CASE d.last_decision
        WHEN 'acknowledge' THEN 'acknowledged'
        WHEN 'assign' THEN 'assigned'
        WHEN 'resolve' THEN 'resolved'
        WHEN 'false_positive' THEN 'false_positive'
        ELSE 'open'
    END AS status,
    a.finding_id,
    a.title
FROM anomalies AS a
LEFT JOIN decisions AS d USING (finding_id)
WHERE ($since IS NULL OR a.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR a.observed_at < $until::TIMESTAMPTZ)
  AND ($client IS NULL OR a.client_iss = $client)
  AND ($service IS NULL OR a.service_id = $service)
  AND ($min_score IS NULL OR a.score >= $min_score)
ORDER BY a.score DESC NULLS LAST, a.observed_at DESC, a.finding_id;
