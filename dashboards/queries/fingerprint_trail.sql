-- The life of one leaked value: every event, finding and review touching a fingerprint.
--
-- @param fingerprint  text       required  A keyed fingerprint, '<key id>:<32 hex>'.
-- @param since        timestamp  null      Start of the period, inclusive.
-- @param until        timestamp  null      End of the period, exclusive.
--
-- Follows one token (or PHI value) by its keyed fingerprint: when it was presented to
-- services (authz events with that token fingerprint, accepted or rejected), where it
-- leaked (findings with that fingerprint), and what reviewers did about it (reviews of
-- those findings: who, when, which action). Fingerprints only match when they were
-- made with the same key (the key id is their prefix).
WITH touched AS (
    SELECT * FROM findings WHERE fingerprint = $fingerprint
)
SELECT * FROM (
    SELECT
        e.time AS occurred_at,
        'event' AS record,
        CAST(e.event_id AS VARCHAR) AS id,
        e.action AS what,
        e.outcome AS result,
        e.reason AS reason,
        e.client_iss,
        e.service_id,
        e.token_jti AS jti,
        NULL AS actor
    FROM events AS e
    WHERE e.token_fingerprint = $fingerprint
      AND ($since IS NULL OR e.time >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR e.time < $until::TIMESTAMPTZ)
    UNION ALL
    SELECT
        t.observed_at AS occurred_at,
        'finding' AS record,
        t.finding_id AS id,
        t.detector || '/' || t.rule AS what,
        t.severity AS result,
        t.kind AS reason,
        t.client_iss,
        t.service_id,
        json_extract_string(t.facts_json, '$.jti') AS jti,
        NULL AS actor
    FROM touched AS t
    WHERE ($since IS NULL OR t.observed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR t.observed_at < $until::TIMESTAMPTZ)
    UNION ALL
    SELECT
        r.reviewed_at AS occurred_at,
        'review' AS record,
        r.finding_id AS id,
        r.action AS what,
        NULL AS result,
        NULL AS reason,
        t.client_iss,
        t.service_id,
        NULL AS jti,
        r.actor
    FROM reviews AS r
    JOIN touched AS t USING (finding_id)
    WHERE ($since IS NULL OR r.reviewed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR r.reviewed_at < $until::TIMESTAMPTZ)
)
ORDER BY occurred_at, record, id;
