-- Schema v1 of the auditor's DuckDB store.
-- Column names are contracts (STYLE.md, rule 6): queries, exports and the dashboard read
-- them. No column holds a token, key or PHI value: only claims, fingerprints, redacted text.

CREATE TABLE runs (
    run_id              VARCHAR PRIMARY KEY,
    started_at          TIMESTAMPTZ NOT NULL,
    ended_at            TIMESTAMPTZ,
    mode                VARCHAR NOT NULL,          -- 'kafka' | 'embedded'
    status              VARCHAR NOT NULL,          -- 'running' | 'completed' | 'failed' | 'interrupted'
    inputs              VARCHAR[],                 -- file paths or topic names
    config_json         VARCHAR,                   -- effective configuration, secrets removed
    fingerprint_key_id  VARCHAR,
    auditor_version     VARCHAR,
    events_in           BIGINT DEFAULT 0,
    logs_in             BIGINT DEFAULT 0,
    findings_out        BIGINT DEFAULT 0,
    dead_letters        BIGINT DEFAULT 0,
    late_events         BIGINT DEFAULT 0
);

-- Authz events as received (already claims-only by contract; attributes redacted).
CREATE TABLE events (
    event_id            UUID PRIMARY KEY,
    time                TIMESTAMPTZ NOT NULL,
    source_role         VARCHAR NOT NULL,
    source_name         VARCHAR NOT NULL,
    source_instance     VARCHAR,
    action              VARCHAR NOT NULL,
    outcome             VARCHAR NOT NULL,
    reason              VARCHAR,
    detail              VARCHAR,
    http_status         SMALLINT,
    client_iss          VARCHAR,
    client_tenant       VARCHAR,
    service_id          VARCHAR,
    service_url         VARCHAR,
    token_jti           VARCHAR,
    token_kid           VARCHAR,
    token_alg           VARCHAR,
    token_typ           VARCHAR,
    token_iat           BIGINT,
    token_nbf           BIGINT,
    token_exp           BIGINT,
    token_aud           VARCHAR[],
    token_jku           VARCHAR,
    token_fingerprint   VARCHAR,
    hook                VARCHAR,
    hook_instance       VARCHAR,
    fhir_server         VARCHAR,
    fhir_authorization  BOOLEAN,
    scopes              VARCHAR[],
    payload_bytes       BIGINT,
    tls_version         VARCHAR,
    tls_cipher          VARCHAR,
    tls_error           VARCHAR,
    peer_ip             VARCHAR,
    trace_id            VARCHAR,
    span_id             VARCHAR,
    attributes_json     VARCHAR,                   -- redacted by the Redactor before storage
    origin              VARCHAR,                   -- topic/partition@offset or path:line
    ingested_at         TIMESTAMPTZ NOT NULL,
    run_id              VARCHAR
);

-- The Finding contract. Incidents that continue keep finding_id and raise revision;
-- the store keeps the highest revision (upsert), so replays insert nothing new.
CREATE TABLE findings (
    finding_id          VARCHAR PRIMARY KEY,
    detector            VARCHAR NOT NULL,
    rule                VARCHAR NOT NULL,
    kind                VARCHAR NOT NULL,
    severity            VARCHAR NOT NULL,
    severity_rank       TINYINT NOT NULL,          -- 0 info .. 4 critical, for ORDER BY
    observed_at         TIMESTAMPTZ NOT NULL,
    title               VARCHAR NOT NULL,
    client_iss          VARCHAR,
    service_id          VARCHAR,
    fingerprint         VARCHAR,
    location            VARCHAR,
    origin              VARCHAR,
    event_ids           VARCHAR[],
    evidence            VARCHAR,
    safeguard           VARCHAR,
    reference           VARCHAR,
    window_start        TIMESTAMPTZ,
    window_end          TIMESTAMPTZ,
    count               BIGINT NOT NULL,
    revision            INTEGER NOT NULL,
    facts_json          VARCHAR,                   -- JSON object of FactValue
    first_stored_at     TIMESTAMPTZ NOT NULL,
    last_stored_at      TIMESTAMPTZ NOT NULL,
    run_id              VARCHAR
);

-- Bad input: metadata only. The payload may hold the very secret we hunt, so it is never kept.
CREATE TABLE dead_letters (
    dead_letter_id      VARCHAR PRIMARY KEY,       -- deterministic from source + position
    received_at         TIMESTAMPTZ NOT NULL,
    reason              VARCHAR NOT NULL,          -- auditor.vocabulary.DeadLetterReason
    detail              VARCHAR,                   -- which field/rule, never a value
    source              VARCHAR NOT NULL,          -- topic name or file path
    kafka_partition     INTEGER,
    kafka_offset        BIGINT,
    line                BIGINT,
    size_bytes          BIGINT NOT NULL,
    run_id              VARCHAR
);

-- Consumed positions, written in the same transaction as the rows they produced.
-- For Kafka: source = topic, part = partition, next_offset = offset to consume next.
-- For files: source = 'file:' + absolute path, part = 0, next_offset = next line number.
CREATE TABLE ingest_offsets (
    source              VARCHAR NOT NULL,
    part                INTEGER NOT NULL,
    next_offset         BIGINT NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, part)
);

-- Review history of findings: append-only, never updated in place.
CREATE TABLE reviews (
    review_id           VARCHAR PRIMARY KEY,
    finding_id          VARCHAR NOT NULL,
    action              VARCHAR NOT NULL,          -- acknowledge | assign | resolve | false_positive | reopen | comment
    actor               VARCHAR NOT NULL,
    assignee            VARCHAR,
    note                VARCHAR,
    reviewed_at         TIMESTAMPTZ NOT NULL
);

-- Alerts sent for findings at or above the alert threshold: one per incident revision.
CREATE TABLE alerts (
    alert_id            VARCHAR PRIMARY KEY,       -- finding_id + ':' + revision
    finding_id          VARCHAR NOT NULL,
    revision            INTEGER NOT NULL,
    severity            VARCHAR NOT NULL,
    sent_at             TIMESTAMPTZ NOT NULL,
    channels            VARCHAR[]                  -- 'kafka', 'webhook'
);

CREATE INDEX findings_observed_at ON findings (observed_at);
CREATE INDEX findings_fingerprint ON findings (fingerprint);
CREATE INDEX events_time ON events (time);
CREATE INDEX reviews_finding ON reviews (finding_id);
