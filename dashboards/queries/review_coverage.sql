-- Review coverage per period: the evidence of regular activity review an auditor asks for.
--
-- @param since     timestamp              null  Start, inclusive (finding first_stored_at).
-- @param until     timestamp              null  End, exclusive.
-- @param period    choice(day|week|month) week  Length of one period (weeks start Monday).
-- @param sla_days  int                    7     Review deadline after a finding is stored.
--
-- HIPAA 164.308(a)(1)(ii)(D) requires regular review of information system activity
-- records. Per period (by when findings were stored): findings = new findings,
-- reviewed = those with at least one review entry, within_sla = first reviewed within
-- sla_days, coverage_pct / sla_pct = their shares, median_hours_to_review over the
-- reviewed ones, still_open = no decision recorded (or reopened) today. reviews and
-- reviewers count the review entries recorded during the period and who made them,
-- whatever finding they were about: proof that someone was looking.
WITH reviewed AS (
    SELECT
        finding_id,
        min(reviewed_at) AS first_reviewed_at,
        arg_max(action, struct_pack(t := reviewed_at, id := review_id))
            FILTER (WHERE action <> 'comment') AS last_decision
    FROM reviews
    GROUP BY finding_id
),
found AS (
    SELECT
        date_trunc($period, f.first_stored_at) AS period_start,
        count(*) AS findings,
        count(r.first_reviewed_at) AS reviewed,
        count(*) FILTER (
            WHERE r.first_reviewed_at <= f.first_stored_at + to_days(CAST($sla_days AS INTEGER))
        ) AS within_sla,
        median(epoch(r.first_reviewed_at - f.first_stored_at) / 3600.0) AS median_hours_to_review,
        count(*) FILTER (WHERE r.last_decision IS NULL OR r.last_decision = 'reopen') AS still_open
    FROM findings AS f
    LEFT JOIN reviewed AS r USING (finding_id)
    WHERE ($since IS NULL OR f.first_stored_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR f.first_stored_at < $until::TIMESTAMPTZ)
    GROUP BY 1
),
activity AS (
    SELECT
        date_trunc($period, reviewed_at) AS period_start,
        count(*) AS reviews,
        count(DISTINCT actor) AS reviewers
    FROM reviews
    WHERE ($since IS NULL OR reviewed_at >= $since::TIMESTAMPTZ)
      AND ($until IS NULL OR reviewed_at < $until::TIMESTAMPTZ)
    GROUP BY 1
)
SELECT
    CAST(coalesce(f.period_start, a.period_start) AS DATE) AS period_start,
    coalesce(f.findings, 0) AS findings,
    coalesce(f.reviewed, 0) AS reviewed,
    coalesce(f.within_sla, 0) AS within_sla,
    round(100.0 * f.reviewed / nullif(f.findings, 0), 1) AS coverage_pct,
    round(100.0 * f.within_sla / nullif(f.findings, 0), 1) AS sla_pct,
    round(f.median_hours_to_review, 1) AS median_hours_to_review,
    coalesce(f.still_open, 0) AS still_open,
    coalesce(a.reviews, 0) AS reviews,
    coalesce(a.reviewers, 0) AS reviewers
FROM found AS f
FULL OUTER JOIN activity AS a USING (period_start)
ORDER BY 1;
