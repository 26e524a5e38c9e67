-- Findings not reviewed within N days of being stored.
--
-- @param days          int        7     The review deadline, in days after first_stored_at.
-- @param as_of         timestamp  null  The moment to judge at; NULL means now.
-- @param min_severity  choice(info|low|medium|high|critical)  low  Ignore findings below this.
-- @param since         timestamp  null  Only findings observed at or after this.
-- @param until         timestamp  null  Only findings observed before this.
--
-- A finding is late when its deadline (first_stored_at + days) has passed at as_of and
-- its first review came after the deadline or has not come at all. Any review entry
-- counts as the first review (acknowledge, assign, resolve, false_positive, comment):
-- each is a person looking at the finding. The clock starts when the finding was
-- stored, because nobody can review it earlier. first_reviewed_at is NULL when no one
-- has looked yet; status is the current review status.
WITH judged AS (
    SELECT coalesce($as_of::TIMESTAMPTZ, now()) AS as_of_ts
),
reviewed AS (
    SELECT
        finding_id,
        min(reviewed_at) AS first_reviewed_at,
        arg_max(action, struct_pack(t := reviewed_at, id := review_id))
            FILTER (WHERE action <> 'comment') AS last_decision
    FROM reviews
    GROUP BY finding_id
)
SELECT
    f.finding_id,
    f.detector,
    f.rule,
    f.severity,
    f.observed_at,
    f.first_stored_at,
    date_diff('day', f.first_stored_at, j.as_of_ts) AS age_days,
    r.first_reviewed_at,
    CASE r.last_decision
        WHEN 'acknowledge' THEN 'acknowledged'
        WHEN 'assign' THEN 'assigned'
        WHEN 'resolve' THEN 'resolved'
        WHEN 'false_positive' THEN 'false_positive'
        ELSE 'open'
    END AS status,
    f.client_iss,
    f.service_id,
    f.title
FROM findings AS f
CROSS JOIN judged AS j
LEFT JOIN reviewed AS r USING (finding_id)
WHERE f.first_stored_at + to_days(CAST($days AS INTEGER)) <= j.as_of_ts
  AND (r.first_reviewed_at IS NULL
       OR r.first_reviewed_at > f.first_stored_at + to_days(CAST($days AS INTEGER)))
  AND f.severity_rank >= CASE $min_severity
        WHEN 'info' THEN 0 WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4
      END
  AND ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
ORDER BY f.severity_rank DESC, f.first_stored_at, f.finding_id;
