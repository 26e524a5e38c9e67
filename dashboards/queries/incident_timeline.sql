-- The timeline of one incident: linked authz events, detection, storage, alerts, reviews.
--
-- @param finding_id  text  required  The finding's id (32 hex digits).
-- @param limit       int   500       At most this many rows, oldest first.
--
-- Authz events are linked to the finding by its event_ids, by the token fingerprint it
-- carries, or by the jti recorded in its facts for the same client (link says which, in
-- that order of strength). The finding's own moments follow: the start of its window,
-- when it was observed (event time), when the store first kept it and when a later
-- revision replaced it. Then every alert sent for it and every review entry (who, what).
-- Event details and attributes are never selected: they may hold inspected content.
WITH f AS (
    SELECT *, json_extract_string(facts_json, '$.jti') AS fact_jti
    FROM findings
    WHERE finding_id = $finding_id
),
linked AS (
    SELECT
        e.*,
        CASE
            WHEN list_contains(f.event_ids, CAST(e.event_id AS VARCHAR)) THEN 'event_ids'
            WHEN e.token_fingerprint = f.fingerprint THEN 'fingerprint'
            ELSE 'jti'
        END AS link
    FROM events AS e, f
    WHERE list_contains(f.event_ids, CAST(e.event_id AS VARCHAR))
       OR (f.fingerprint IS NOT NULL AND e.token_fingerprint = f.fingerprint)
       OR (f.fact_jti IS NOT NULL AND e.token_jti = f.fact_jti
           AND (f.client_iss IS NULL OR e.client_iss = f.client_iss))
)
SELECT * FROM (
    SELECT
        time AS occurred_at,
        'event' AS record,
        action AS what,
        outcome AS result,
        reason,
        client_iss,
        service_id,
        token_jti AS jti,
        peer_ip,
        link,
        NULL AS actor,
        CAST(event_id AS VARCHAR) AS id
    FROM linked
    UNION ALL
    SELECT moment, 'finding', milestone, severity, NULL, client_iss, service_id, fact_jti,
           NULL, NULL, NULL, finding_id
    FROM (
        SELECT window_start AS moment, 'window started' AS milestone, * FROM f
        WHERE window_start IS NOT NULL
        UNION ALL
        SELECT observed_at, 'observed', * FROM f
        UNION ALL
        SELECT first_stored_at, 'stored', * FROM f
        UNION ALL
        SELECT last_stored_at, 'revision ' || revision || ' stored', * FROM f
        WHERE revision > 0 AND last_stored_at > first_stored_at
    )
    UNION ALL
    SELECT a.sent_at, 'alert', 'alert for revision ' || a.revision, a.severity,
           array_to_string(a.channels, ', '), NULL, NULL, NULL, NULL, NULL, NULL, a.alert_id
    FROM alerts AS a
    WHERE a.finding_id = $finding_id
    UNION ALL
    SELECT r.reviewed_at, 'review', r.action, NULL, r.assignee, NULL, NULL, NULL, NULL, NULL,
           r.actor, r.review_id
    FROM reviews AS r
    WHERE r.finding_id = $finding_id
)
-- At the same instant the finding's own moment comes first (its window opens, then the
-- events in it).
ORDER BY occurred_at, record <> 'finding', record, id
LIMIT $limit;
