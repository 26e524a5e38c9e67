-- PHI exposures by service, kind and HIPAA Safe Harbor category.
--
-- @param since    timestamp  null  Start of the period, inclusive (finding observed_at).
-- @param until    timestamp  null  End of the period, exclusive.
-- @param service  text       null  Only this CDS service id.
--
-- One row per service, PHI kind (ssn, mrn, dob, ...) and Safe Harbor category
-- (45 CFR 164.514(b)(2)(i), e.g. G-social-security-numbers) from phi_in_logs findings.
-- identifiers counts distinct keyed fingerprints: how many different values leaked,
-- without anyone storing them. occurrences sums the findings' counts.
SELECT
    coalesce(service_id, '(unknown)') AS service_id,
    kind,
    coalesce(safeguard, '(unmapped)') AS safe_harbor,
    count(DISTINCT fingerprint) AS identifiers,
    count(*) AS findings,
    CAST(sum(count) AS BIGINT) AS occurrences,
    arg_max(severity, severity_rank) AS worst_severity,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM findings
WHERE detector = 'phi_in_logs'
  AND ($since IS NULL OR observed_at >= $since::TIMESTAMPTZ)
  AND ($until IS NULL OR observed_at < $until::TIMESTAMPTZ)
  AND ($service IS NULL OR service_id = $service)
GROUP BY ALL
ORDER BY findings DESC, service_id, kind, safe_harbor;
