-- Replay incidents (a jti presented more than once) by client.
--
-- @param since   timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until   timestamp  null  End of the period, exclusive.
-- @param client  text       null  Only this client iss.
-- @param service text       null  Only this CDS service id.
--
-- One row per client iss and replay_burst rule. A burst is one finding however many
-- presentations it holds (its count); incidents that grew kept their id and raised
-- their revision, so they are counted once. open counts incidents whose review status
-- is still open (no decision recorded, or reopened).
WITH decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
)
SELECT
    coalesce(f.client_iss, '(unknown)') AS client_iss,
    f.rule,
    count(*) AS incidents,
    CAST(sum(f.count) AS BIGINT) AS presentations,
    count(DISTINCT f.fingerprint) AS tokens,
    count(DISTINCT f.service_id) AS services,
    arg_max(f.severity, f.severity_rank) AS worst_severity,
    min(coalesce(f.window_start, f.observed_at)) AS first_seen,
    max(coalesce(f.window_end, f.observed_at)) AS last_seen,
    count(*) FILTER (WHERE d.last_decision IS NULL OR d.last_decision = 'reopen') AS open
FROM findings AS f
LEFT JOIN decisions AS d USING (finding_id)
WHERE f.detector = 'replay_burst'
  AND ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
  AND ($client IS NULL OR f.client_iss = $client)
  AND ($service IS NULL OR f.service_id = $service)
GROUP BY ALL
ORDER BY incidents DESC, presentations DESC, client_iss, f.rule;
