"""Configuration of the pipeline and the emitters: Kafka, topics, groups, the spool.

Sources, highest priority first: keyword overrides (the CLI's flags), environment
variables (``AUDITOR_`` prefix, ``__`` between nested names, e.g.
``AUDITOR_KAFKA__BOOTSTRAP_SERVERS=k1:9092,k2:9092``), a TOML file (``--config PATH`` or
``AUDITOR_CONFIG``), then the defaults below, which fit the development broker of
``scripts/kafka``.

Every problem becomes one ``ConfigurationError`` naming each bad setting and why, never
its value: a password or a private key path may be the value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from auditor.errors import ConfigurationError
from auditor.vocabulary import DetectorName, Severity
from detectors.config import StreamDetectorsConfig

ENV_PREFIX: Final = "AUDITOR_"
ENV_CONFIG: Final = "AUDITOR_CONFIG"
DEV_BOOTSTRAP: Final = "127.0.0.1:19092"
DAY_MS: Final = 24 * 3600 * 1000

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Compression = Literal["none", "gzip", "lz4", "zstd", "snappy"]
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
"""Kafka's own rule for topic names (and we use it for group ids as well)."""
HostPort = Annotated[str, StringConstraints(pattern=r"^[^\s:,]+:[0-9]{1,5}$")]


class _Section(BaseModel):
    """A settings section: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """How to reach the cluster: bootstrap servers, identity, TLS and SASL."""

    bootstrap_servers: Annotated[tuple[HostPort, ...], NoDecode] = Field(
        default=(DEV_BOOTSTRAP,), min_length=1, description="host:port, comma-separated."
    )
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "cds-hooks-auditor"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: FilePath | None = Field(default=None, description="CA bundle (PEM).")
    ssl_certfile: FilePath | None = Field(default=None, description="Client certificate (PEM).")
    ssl_keyfile: FilePath | None = Field(default=None, description="Client private key (PEM).")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    bootstrap_timeout_ms: int = Field(
        default=30_000, ge=100, description="How long opening a client waits for a broker."
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        tls = self.security_protocol.endswith("SSL")
        if sasl and (
            self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError("sasl_mechanism is set but security_protocol is not SASL_*")
        has_tls_files = any((self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile))
        if not tls and has_tls_files:
            raise ValueError("ssl_* files are set but security_protocol is not SSL or SASL_SSL")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile")
        return self

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
        }
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            # The secret leaves its SecretStr only here, into the client's own config.
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol.endswith("SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                path = getattr(self, name)
                if path is not None:
                    options[name] = str(path)
            if self.ssl_key_password is not None:
                options["ssl_password"] = self.ssl_key_password.get_secret_value()
        return options


class TopicSpec(_Section):
    """One topic: its name and how ``auditor topics create`` makes it."""

    name: TopicName
    partitions: int = Field(default=6, ge=1, le=10_000)
    replication_factor: int | None = Field(
        default=None, ge=1, le=32, description="None: the cluster's default.replication.factor."
    )
    retention_ms: int = Field(default=7 * DAY_MS, ge=-1, description="-1 keeps forever.")
    configs: dict[str, str] = Field(
        default_factory=dict, description="More topic configs, e.g. min.insync.replicas."
    )

    def topic_configs(self) -> dict[str, str]:
        """The configs to create the topic with."""
        return {"retention.ms": str(self.retention_ms), **self.configs}


STATE_TOPIC_CONFIGS: Final = {
    # Checkpoints of the detect stage: only the newest record of each key matters. Records
    # are kept at least an hour before compaction may drop them, so the checkpoint a
    # committed offset points at outlives the next checkpoint being written.
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(3600 * 1000),
}


class TopicsSettings(_Section):
    """The pipeline's topics. Names are contracts shared with every producer.

    Five carry records (authz, logs, findings, alerts, dead letters); ``state`` holds the
    detect stage's checkpoints (compacted), read back when a partition moves or restarts.
    """

    authz: TopicSpec = TopicSpec(name="cds.authz", retention_ms=7 * DAY_MS)
    logs: TopicSpec = TopicSpec(name="cds.logs", retention_ms=3 * DAY_MS)
    findings: TopicSpec = TopicSpec(name="cds.findings", retention_ms=30 * DAY_MS)
    alerts: TopicSpec = TopicSpec(name="cds.alerts", partitions=1, retention_ms=30 * DAY_MS)
    deadletters: TopicSpec = TopicSpec(name="cds.deadletters", retention_ms=14 * DAY_MS)
    state: TopicSpec = TopicSpec(
        name="cds.detect-state", partitions=1, retention_ms=-1, configs=STATE_TOPIC_CONFIGS
    )

    @model_validator(mode="after")
    def _names_are_distinct(self) -> TopicsSettings:
        names = [spec.name for spec in self.all()]
        if len(set(names)) != len(names):
            raise ValueError("topic names must be distinct")
        return self

    def all(self) -> tuple[TopicSpec, ...]:
        """Every topic, in a stable order."""
        return (self.authz, self.logs, self.findings, self.alerts, self.deadletters, self.state)


class GroupSettings(_Section):
    """Consumer group ids of the pipeline's stages."""

    detect: TopicName = "cds-auditor-detect"
    store: TopicName = "cds-auditor-store"


class EmitterSettings(_Section):
    """The producer library in services: buffer, spool and batching."""

    spool_dir: Path | None = Field(
        default=None,
        description="Where records wait while Kafka is unreachable; default "
        "$XDG_STATE_HOME/cds-hooks-auditor/spool/<client_id>.",
    )
    buffer_records: int = Field(default=10_000, ge=1)
    spool_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    spool_segment_bytes: int = Field(default=16 << 20, ge=64 << 10)
    fsync: Literal["never", "interval", "always"] = "interval"
    fsync_interval_s: float = Field(default=1.0, gt=0)
    overflow: Literal["drop_newest", "drop_oldest"] = "drop_newest"
    compression: Compression = Field(
        default="zstd", description="zstd: the best ratio and speed measured (bench/emitter.py)."
    )
    linger_ms: int = Field(default=5, ge=0)
    batch_size: int = Field(default=64 << 10, ge=1 << 10)
    outage_after_s: float = Field(
        default=10.0, gt=0, description="Unacknowledged this long: spool instead of waiting."
    )
    reconnect_max_s: float = Field(default=30.0, gt=0)

    def resolved_spool_dir(self, client_id: str) -> Path:
        """The spool directory, defaulting under the user's state directory."""
        if self.spool_dir is not None:
            return self.spool_dir
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "cds-hooks-auditor" / "spool" / client_id


class RecordLimits(_Section):
    """What one input record may be before it is set aside as a dead letter."""

    max_bytes: int = Field(default=1 << 20, ge=1 << 10, le=64 << 20)
    max_depth: int = Field(
        default=32, ge=2, le=512, description="Nesting of JSON objects and arrays."
    )


class WebhookSettings(_Section):
    """An HTTP endpoint that receives each alert as a JSON POST (optional)."""

    url: SecretStr | None = Field(
        default=None,
        description="https://...; a secret, since chat webhooks carry their token in the URL.",
    )
    bearer_token: SecretStr | None = Field(default=None, description="Sent as Authorization.")
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=3, ge=0, le=20, description="Retries after the first attempt.")
    backoff_s: float = Field(default=0.5, gt=0, le=60, description="First retry delay; doubles.")
    queue: int = Field(
        default=1_000, ge=1, description="Alerts waiting for delivery; beyond it they are dropped."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("the webhook url must start with https:// or http://")
        return value


class AlertSettings(_Section):
    """Which findings become alerts, and where alerts go besides the alerts topic."""

    min_severity: Severity = Severity.HIGH
    grouped_detectors: frozenset[DetectorName] = frozenset(
        {DetectorName.LEAKED_TOKEN, DetectorName.PHI_IN_LOGS}
    )
    """Detectors that report each occurrence (one finding per leaked copy): their findings
    are grouped by detector, rule and fingerprint, and a group alerts at its 1st, 2nd,
    4th, 8th ... occurrence instead of at every one."""
    group_window_s: float = Field(
        default=3600.0, gt=0, description="A group quiet this long starts again from one."
    )
    remember: int = Field(
        default=100_000, ge=100, description="Incidents and groups remembered for deduplication."
    )
    log: bool = Field(default=True, description="Also write each alert as a log line.")
    webhook: WebhookSettings = WebhookSettings()


class TelemetrySettings(_Section):
    """The pipeline's own traces and metrics (OpenTelemetry)."""

    exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL, e.g. http://collector:4318; default: the OTEL_* env.",
    )
    export_interval_s: float = Field(default=10.0, gt=0, le=3600)
    service_name: str = "cds-hooks-auditor"


class PipelineSettings(_Section):
    """``auditor run``: batching, event time, checkpoints, limits, alerts, telemetry."""

    batch_records: int = Field(
        default=5_000, ge=1, le=100_000, description="Records per detect batch."
    )
    poll_ms: int = Field(
        default=100, ge=1, le=10_000, description="Longest wait for input before a batch."
    )
    store_batch_records: int = Field(
        default=20_000, ge=1, le=1_000_000, description="Rows per store transaction at most."
    )
    store_wait_ms: int = Field(
        default=200, ge=1, le=60_000, description="Longest a row waits for its transaction."
    )
    store_checkpoint_mib: int = Field(
        default=256,
        ge=1,
        le=65_536,
        description="The store's write-ahead log size (MiB) at which DuckDB checkpoints it "
        "into the file. Larger: cheaper inserts on a large table; longer recovery after a "
        "crash (the next open replays up to this much log: 231 MiB took 1.7 s).",
    )
    allowed_lateness_s: float = Field(default=5.0, ge=0, le=86_400)
    idle_advance_s: float | None = Field(
        default=30.0,
        gt=0,
        description="Kafka: a partition without events this long has its watermark follow "
        "the wall clock (minus this), so quiet incidents close. None: never.",
    )
    checkpoint_interval_s: float = Field(default=30.0, gt=0, le=86_400)
    store_process: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Embedded runs: the store stage (the DuckDB writer) in a process of its "
        "own, so that detection and storage do not share one GIL. auto: when the inputs are "
        "files of 64 MiB or more in all and the run has 2 cores or more.",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        le=300_000,
        description="A detect process silent this long leaves the group: its partitions move.",
    )
    instance_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,200}$")] | None = (
        Field(
            default=None,
            description="Static group membership (KIP-345): a detect process restarted with "
            "the same id gets its partitions back at once, without a rebalance. Unique per "
            "process (e.g. the host name).",
        )
    )
    snapshot_key: SecretStr | None = Field(
        default=None, description="HMAC key (>= 16 bytes) authenticating detector checkpoints."
    )
    progress_interval_s: float = Field(default=5.0, gt=0)
    limits: RecordLimits = RecordLimits()
    alerts: AlertSettings = AlertSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    detectors: StreamDetectorsConfig = StreamDetectorsConfig()

    @field_validator("snapshot_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:  # noqa: PLR2004 - as the runtime requires
            raise ValueError("the snapshot key must be at least 16 bytes")
        return value


class AuditorSettings(BaseSettings):
    """Everything the Kafka side of the auditor is configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicsSettings = TopicsSettings()
    groups: GroupSettings = GroupSettings()
    emitter: EmitterSettings = EmitterSettings()
    pipeline: PipelineSettings = PipelineSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files: explicit config only
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - as above
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Overrides, then the environment, then the TOML file being loaded."""
        return (
            init_settings,
            env_settings,
            InitSettingsSource(settings_cls, init_kwargs=_file_data.get()),
        )


_file_data: ContextVar[dict[str, Any]] = ContextVar("_file_data", default={})  # noqa: B039 - never mutated


def load_settings(
    config: Path | str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AuditorSettings:
    """Load the settings from overrides, the environment and a TOML file.

    Args:
        config: The TOML file; ``AUDITOR_CONFIG`` when not given; none when neither is set.
        overrides: Nested values that win over every source, e.g.
            ``{"kafka": {"bootstrap_servers": "127.0.0.1:9092"}}``.
        environ: Where to read ``AUDITOR_CONFIG`` (the settings themselves always read the
            process environment).

    Raises:
        ConfigurationError: The file is missing or not TOML, or a setting is invalid. The
            message names each setting and the problem, never the value.
    """
    env = os.environ if environ is None else environ
    path = config if config is not None else env.get(ENV_CONFIG)
    data = read_config_file(Path(path)) if path else {}
    token = _file_data.set(data)
    try:
        return AuditorSettings(**dict(overrides or {}))
    except ValidationError as exc:
        where = f" (config file {path})" if path else ""
        raise ConfigurationError(f"invalid settings{where}:\n{describe_errors(exc)}") from None
    finally:
        _file_data.reset(token)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML configuration file.

    Raises:
        ConfigurationError: It cannot be read or is not valid TOML.
    """
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message gives line and column, not the offending text.
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: the setting's dotted path and pydantic's message, no input."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(settings)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
