-- Other findings about the same value or token: same keyed fingerprint, or same client jti.
--
-- @param finding_id  text  required  The finding's id (32 hex digits).
-- @param limit       int   100       At most this many rows, oldest first.
--
-- A fingerprint ties together every place one token or PHI value showed up (a leak in
-- two services, the replay of a leaked token); a jti ties the findings about one JWT of
-- one client. Fingerprints only match when they were made with the same key. status is
-- each related finding's current review status.
WITH f AS (
    SELECT *, json_extract_string(facts_json, '$.jti') AS fact_jti
    FROM findings
    WHERE finding_id = $finding_id
),
decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
)
SELECT
    o.finding_id,
    o.observed_at,
    o.detector,
    o.rule,
    o.severity,
    o.title,
    o.client_iss,
    o.service_id,
    CASE WHEN o.fingerprint = f.fingerprint THEN 'fingerprint' ELSE 'jti' END AS link,
    CASE d.last_decision
        WHEN 'acknowledge' THEN 'acknowledged'
        WHEN 'assign' THEN 'assigned'
        WHEN 'resolve' THEN 'resolved'
        WHEN 'false_positive' THEN 'false_positive'
        ELSE 'open'
    END AS status
FROM findings AS o
CROSS JOIN f
LEFT JOIN decisions AS d ON d.finding_id = o.finding_id
WHERE o.finding_id <> f.finding_id
  AND ((f.fingerprint IS NOT NULL AND o.fingerprint = f.fingerprint)
       OR (f.fact_jti IS NOT NULL
           AND json_extract_string(o.facts_json, '$.jti') = f.fact_jti
           AND o.client_iss IS NOT DISTINCT FROM f.client_iss))
ORDER BY o.observed_at, o.finding_id
LIMIT $limit;
