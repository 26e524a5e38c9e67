-- Findings by detector, severity and current review status.
--
-- @param since  timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until  timestamp  null  End of the period, exclusive.
--
-- Where the findings of a period stand today: open (no decision, or reopened),
-- acknowledged, assigned, resolved or false_positive, as the review history says.
-- commented counts findings whose history holds at least one comment.
WITH history AS (
    SELECT
        finding_id,
        arg_max(action, struct_pack(t := reviewed_at, id := review_id))
            FILTER (WHERE action <> 'comment') AS last_decision,
        count(*) FILTER (WHERE action = 'comment') AS comments
    FROM reviews
    GROUP BY finding_id
)
SELECT
    f.detector,
    f.severity,
    CASE h.last_decision
        WHEN 'acknowledge' THEN 'acknowledged'
        WHEN 'assign' THEN 'assigned'
        WHEN 'resolve' THEN 'resolved'
        WHEN 'false_positive' THEN 'false_positive'
        ELSE 'open'
    END AS status,
    count(*) AS findings,
    count(*) FILTER (WHERE h.comments > 0) AS commented
FROM findings AS f
LEFT JOIN history AS h USING (finding_id)
WHERE ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
GROUP BY f.detector, f.severity, f.severity_rank, 3
ORDER BY f.detector, f.severity_rank DESC, 3;
