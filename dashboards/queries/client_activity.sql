-- Everything about one client iss: its authz events and the findings that name it.
--
-- @param iss    text       required  The client's iss, exactly as in its JWTs.
-- @param since  timestamp  null      Start of the period, inclusive.
-- @param until  timestamp  null      End of the period, exclusive.
-- @param limit  int        1000      At most this many rows, oldest first.
--
-- One timeline of two kinds of record. For an event: what = its action, result = its
-- outcome, reason = its failure reason. For a finding: what = detector/rule, result =
-- severity, reason = kind, and title says what was found. jti and fingerprint tie the
-- rows to one token (follow a fingerprint with the fingerprint_trail query).
SELECT * FROM (
    SELECT
        e.time AS occurred_at,
        'event' AS record,
        CAST(e.event_id AS VARCHAR) AS id,
        e.action AS what,
        e.outcome AS result,
        e.reason AS reason,
        e.service_id,
        e.token_jti AS jti,
        e.token_fingerprint AS fingerprint,
        e.peer_ip,
        NULL AS title
    FROM events AS e
    WHERE e.client_iss = $iss
      AND ($since IS NULL OR e.time >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR e.time < $until::TIMESTAMPTZ)
    UNION ALL
    SELECT
        f.observed_at AS occurred_at,
        'finding' AS record,
        f.finding_id AS id,
        f.detector || '/' || f.rule AS what,
        f.severity AS result,
        f.kind AS reason,
        f.service_id,
        json_extract_string(f.facts_json, '$.jti') AS jti,
        f.fingerprint,
        NULL AS peer_ip,
        f.title
    FROM findings AS f
    WHERE f.client_iss = $iss
      AND ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
)
ORDER BY occurred_at, record, id
LIMIT $limit;
