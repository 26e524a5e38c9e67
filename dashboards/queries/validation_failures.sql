-- Token validation failures by client, service and reason, per day.
--
-- @param since    timestamp  null  Start of the period, inclusive (event time).
-- @param until    timestamp  null  End of the period, exclusive.
-- @param client   text       null  Only this client iss.
-- @param service  text       null  Only this CDS service id.
-- @param reason   text       null  Only this failure reason (expired, bad_signature, ...).
--
-- Counts authz events with outcome 'failure' (any action: token.rejected,
-- allowlist.denied, tls.failed, ...). tokens counts distinct token fingerprints and
-- peers distinct peer addresses: many failures from one token is a broken client, from
-- many tokens or peers it may be an attack.
SELECT
    CAST(date_trunc('day', time) AS DATE) AS day,
    coalesce(client_iss, '(unknown)') AS client_iss,
    coalesce(service_id, '(unknown)') AS service_id,
    coalesce(reason, '(none)') AS reason,
    count(*) AS failures,
    count(DISTINCT token_fingerprint) AS tokens,
    count(DISTINCT peer_ip) AS peers,
    min(time) AS first_seen,
    max(time) AS last_seen
FROM events
WHERE outcome = 'failure'
  AND ($since IS NULL OR time >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR time < $until::TIMESTAMPTZ)
  AND ($client IS NULL OR client_iss = $client)
  AND ($service IS NULL OR service_id = $service)
  AND ($reason IS NULL OR reason = $reason)
GROUP BY ALL
ORDER BY day DESC, failures DESC, client_iss, service_id, reason;
