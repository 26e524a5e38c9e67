-- Policy violations by rule (CDS Hooks normative rules and local policy).
--
-- @param since    timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until    timestamp  null  End of the period, exclusive.
-- @param client   text       null  Only this client iss.
-- @param service  text       null  Only this CDS service id.
--
-- One row per policy rule id, with the spec section or guide practice it rests on
-- (reference) and the safeguard it maps to. clients and services count the distinct
-- parties that broke the rule; open counts findings nobody has decided on yet.
WITH decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
)
SELECT
    f.rule,
    arg_max(f.severity, f.severity_rank) AS worst_severity,
    any_value(f.reference) AS reference,
    any_value(f.safeguard) AS safeguard,
    count(*) AS findings,
    CAST(sum(f.count) AS BIGINT) AS occurrences,
    count(DISTINCT f.client_iss) AS clients,
    count(DISTINCT f.service_id) AS services,
    min(f.observed_at) AS first_seen,
    max(f.observed_at) AS last_seen,
    count(*) FILTER (WHERE d.last_decision IS NULL OR d.last_decision = 'reopen') AS open
FROM findings AS f
LEFT JOIN decisions AS d USING (finding_id)
WHERE f.detector = 'policy'
  AND ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
  AND ($client IS NULL OR f.client_iss = $client)
  AND ($service IS NULL OR f.service_id = $service)
GROUP BY f.rule
ORDER BY max(f.severity_rank) DESC, findings DESC, f.rule;
