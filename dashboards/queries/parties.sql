-- Clients or services at a glance: events, failures, findings and open findings of each.
--
-- @param party  choice(client|service)  client  Which parties to list: client iss or service id.
-- @param since  timestamp  null  Start of the period, inclusive (event time, finding observed_at).
-- @param until  timestamp  null  End of the period, exclusive.
--
-- One row per client iss (or service id) that sent authz events or was named by a
-- finding in the period; events and findings that name none count as '(unknown)'.
-- failure_pct is failures per hundred events; open counts findings with no decision
-- recorded (or reopened); high_or_critical counts findings of those severities whatever
-- their status. Sorted with the most open findings first, '(unknown)' last.
WITH decisions AS (
    SELECT finding_id,
           arg_max(action, struct_pack(t := reviewed_at, id := review_id)) AS last_decision
    FROM reviews
    WHERE action <> 'comment'
    GROUP BY finding_id
),
activity AS (
    SELECT
        coalesce(CASE WHEN $party = 'client' THEN client_iss ELSE service_id END, '(unknown)')
            AS name,
        count(*) AS events,
        count(*) FILTER (WHERE outcome = 'failure') AS failures,
        max(time) AS last_event
    FROM events
    WHERE ($since IS NULL OR time >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR time < $until::TIMESTAMPTZ)
    GROUP BY 1
),
found AS (
    SELECT
        coalesce(CASE WHEN $party = 'client' THEN f.client_iss ELSE f.service_id END, '(unknown)')
            AS name,
        count(*) AS findings,
        count(*) FILTER (WHERE d.last_decision IS NULL OR d.last_decision = 'reopen') AS open,
        count(*) FILTER (WHERE f.severity_rank >= 3) AS high_or_critical,
        max(f.observed_at) AS last_finding
    FROM findings AS f
    LEFT JOIN decisions AS d USING (finding_id)
    WHERE ($since IS NULL OR f.observed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR f.observed_at < $until::TIMESTAMPTZ)
    GROUP BY 1
)
SELECT
    name,
    coalesce(a.events, 0) AS events,
    coalesce(a.failures, 0) AS failures,
    round(100.0 * a.failures / nullif(a.events, 0), 1) AS failure_pct,
    coalesce(f.findings, 0) AS findings,
    coalesce(f.open, 0) AS open,
    coalesce(f.high_or_critical, 0) AS high_or_critical,
    a.last_event,
    f.last_finding
FROM activity AS a
FULL OUTER JOIN found AS f USING (name)
ORDER BY name = '(unknown)', open DESC, findings DESC, events DESC, name;
