-- Clients and services that went silent: events before the period, none during it.
--
-- @param since          timestamp  null  Start of the period; NULL means 7 days before until.
-- @param until          timestamp  null  End of the period, exclusive; NULL means now.
-- @param lookback_days  int        30    How far before the period to look for activity.
--
-- A client (by iss) or a service (by id) that produced authz events in the lookback
-- window before the period but none within it. Silence is a gap in the audit trail:
-- either the integration stopped, or its events stopped reaching the auditor - both
-- need an explanation for HIPAA 164.312(b) audit controls. days_silent counts from the
-- last event seen to the end of the period.
WITH period AS (
    SELECT
        coalesce($since::TIMESTAMPTZ,
                 coalesce($until::TIMESTAMPTZ, now()) - INTERVAL 7 DAY) AS since_ts,
        coalesce($until::TIMESTAMPTZ, now()) AS until_ts
),
span AS (
    SELECT since_ts - to_days(CAST($lookback_days AS INTEGER)) AS lookback_ts, since_ts, until_ts
    FROM period
),
parties AS (
    SELECT 'client' AS party, client_iss AS name, time FROM events WHERE client_iss IS NOT NULL
    UNION ALL
    SELECT 'service' AS party, service_id AS name, time FROM events WHERE service_id IS NOT NULL
),
before AS (
    SELECT p.party, p.name, count(*) AS events_before, max(p.time) AS last_seen
    FROM parties AS p, span AS w
    WHERE p.time >= w.lookback_ts AND p.time < w.since_ts
    GROUP BY p.party, p.name
),
during AS (
    SELECT DISTINCT p.party, p.name
    FROM parties AS p, span AS w
    WHERE p.time >= w.since_ts AND p.time < w.until_ts
)
SELECT
    b.party,
    b.name,
    b.last_seen,
    b.events_before,
    date_diff('day', b.last_seen, w.until_ts) AS days_silent
FROM before AS b
CROSS JOIN span AS w
ANTI JOIN during AS d ON d.party = b.party AND d.name = b.name
ORDER BY b.party, b.last_seen, b.name;
