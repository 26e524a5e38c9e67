-- Findings matching filters, newest first, with their review status (the findings table).
--
-- @param since         timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until         timestamp  null  End of the period, exclusive.
-- @param detector      text       null  Only this detector (leaked_token, phi_in_logs, ...).
-- @param rule          text       null  Only this rule of the detector.
-- @param severity      choice(info|low|medium|high|critical)  null  Only this severity.
-- @param min_severity  choice(info|low|medium|high|critical)  info  Only findings at least this severe.
-- @param status        choice(open|acknowledged|assigned|resolved|false_positive)  null  Only findings in this review status.
-- @param client        text       null  Only this client iss.
-- @param service       text       null  Only this CDS service id.
-- @param limit         int        100   At most this many rows.
-- @param offset        int        0     Skip this many rows first (paging).
--
-- status is derived from the review history as everywhere else: the target of the last
-- deciding act (comments decide nothing), open when there is none or it was a reopening.
-- total is the number of rows matching the filters before limit and offset, so a table
-- can page through them; it is absent when offset is past the end.
WITH decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
),
listed AS (
    SELECT
        f.finding_id,
        f.observed_at,
        f.detector,
        f.rule,
        f.kind,
        f.severity,
        f.severity_rank,
        f.title,
        f.client_iss,
        f.service_id,
        f.count,
        f.revision,
        f.first_stored_at,
        CASE d.last_decision
            WHEN 'acknowledge' THEN 'acknowledged'
            WHEN 'assign' THEN 'assigned'
            WHEN 'resolve' THEN 'resolved'
            WHEN 'false_positive' THEN 'false_positive'
            ELSE 'open'
        END AS status
    FROM findings AS f
    LEFT JOIN decisions AS d USING (finding_id)
    WHERE ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
      AND ($detector IS NULL OR f.detector = $detector)
      AND ($rule IS NULL OR f.rule = $rule)
      AND ($severity IS NULL OR f.severity = $severity)
      AND f.severity_rank >= CASE $min_severity
            WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 WHEN 'critical' THEN 4 ELSE 0
          END
      AND ($client IS NULL OR f.client_iss = $client)
      AND ($service IS NULL OR f.service_id = $service)
)
SELECT *, count(*) OVER () AS total
FROM listed
WHERE ($status IS NULL OR status = $status)
ORDER BY observed_at DESC, finding_id
LIMIT $limit OFFSET $offset;
