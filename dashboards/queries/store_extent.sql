-- What the store holds: rows of each kind and the time they span.
--
-- The first thing to check before reading any other answer: an empty or stale store
-- answers every question with "nothing found". Times are event time for events and
-- findings, wall time for runs.
SELECT
    (SELECT count(*) FROM events) AS events,
    (SELECT min(time) FROM events) AS first_event,
    (SELECT max(time) FROM events) AS last_event,
    (SELECT count(*) FROM findings) AS findings,
    (SELECT min(observed_at) FROM findings) AS first_finding,
    (SELECT max(observed_at) FROM findings) AS last_finding,
    (SELECT count(*) FROM reviews) AS reviews,
    (SELECT count(*) FROM dead_letters) AS dead_letters,
    (SELECT count(*) FROM runs) AS runs,
    (SELECT max(started_at) FROM runs) AS last_run_started;
