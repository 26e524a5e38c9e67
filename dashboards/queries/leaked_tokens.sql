-- Leaked tokens by service and day, live-at-leak-time ones first.
--
-- @param since    timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until    timestamp  null  End of the period, exclusive.
-- @param service  text       null  Only this CDS service id.
-- @param kind     text       null  Only this token kind (jwt, bearer_token, basic_auth, ...).
--
-- One row per day, service, token kind and liveness. "live" says whether the credential
-- could still be used when it was logged: the leaked_token detector records it as the
-- boolean fact `live` in facts_json, beside `alg`, `iss` and `exp` (NumericDate) for JWTs.
-- When `live` is absent but `exp` is present it is computed as exp > observed_at. Kinds
-- without an expiry (opaque bearer tokens, keys, secrets) have live = NULL: unknown, so
-- they sort after the live ones and must be treated as live until rotated.
-- tokens counts distinct keyed fingerprints: the same token logged twice is one token.
WITH leaks AS (
    SELECT
        f.*,
        coalesce(
            TRY_CAST(json_extract_string(f.facts_json, '$.live') AS BOOLEAN),
            TRY_CAST(json_extract_string(f.facts_json, '$.exp') AS BIGINT) > epoch(f.observed_at)
        ) AS live
    FROM findings AS f
    WHERE f.detector = 'leaked_token'
      AND ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
      AND ($service IS NULL OR f.service_id = $service)
      AND ($kind IS NULL OR f.kind = $kind)
)
SELECT
    CAST(date_trunc('day', observed_at) AS DATE) AS day,
    coalesce(service_id, '(unknown)') AS service_id,
    kind,
    live,
    count(DISTINCT fingerprint) AS tokens,
    count(*) AS findings,
    CAST(sum(count) AS BIGINT) AS occurrences,
    arg_max(severity, severity_rank) AS worst_severity,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM leaks
GROUP BY ALL
ORDER BY live DESC NULLS LAST, day DESC, tokens DESC, service_id, kind;
