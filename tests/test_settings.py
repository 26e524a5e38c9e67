"""Kafka settings: sources in the documented order, clear errors, secrets never echoed."""

from __future__ import annotations

import pytest

from auditor.errors import ConfigurationError
from pipelines.settings import AuditorSettings, KafkaSettings, load_settings

SECRET = "s3cr3t-pa55w0rd-value"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    # Each test states its own environment; a developer's AUDITOR_* must not leak in.
    import os

    for name in list(os.environ):
        if name.startswith("AUDITOR_"):
            monkeypatch.delenv(name)


def test_defaults_point_at_the_development_broker():
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == ("127.0.0.1:19092",)
    assert [t.name for t in settings.topics.all()] == [
        "cds.authz",
        "cds.logs",
        "cds.findings",
        "cds.alerts",
        "cds.deadletters",
        "cds.detect-state",
    ]


def test_a_toml_file_sets_nested_values(tmp_path):
    config = tmp_path / "auditor.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = ["k1:9092", "k2:9092"]\n'
        '[topics.authz]\nname = "prod.authz"\npartitions = 24\n'
    )
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == ("k1:9092", "k2:9092")
    assert settings.topics.authz.name == "prod.authz"
    assert settings.topics.authz.partitions == 24
    assert settings.topics.logs.name == "cds.logs"  # untouched sections keep defaults


def test_the_environment_wins_over_the_file_and_overrides_win_over_both(tmp_path, monkeypatch):
    config = tmp_path / "auditor.toml"
    config.write_text('[kafka]\nclient_id = "from-file"\nbootstrap_servers = "file:9092"\n')
    monkeypatch.setenv("AUDITOR_CONFIG", str(config))
    monkeypatch.setenv("AUDITOR_KAFKA__CLIENT_ID", "from-env")
    monkeypatch.setenv("AUDITOR_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    settings = load_settings(overrides={"kafka": {"bootstrap_servers": "flag:9092"}})
    assert settings.kafka.client_id == "from-env"
    assert settings.kafka.bootstrap_servers == ("flag:9092",)


def test_comma_separated_bootstrap_servers_are_split():
    settings = KafkaSettings(bootstrap_servers=" a:1, b:2 ,c:3")
    assert settings.bootstrap_servers == ("a:1", "b:2", "c:3")


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        # SASL without credentials would fail at connect time, far from the cause.
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        # A mechanism with PLAINTEXT is a sign the protocol was forgotten.
        ({"sasl_mechanism": "PLAIN"}, "not SASL_"),
        # Kerberos/OAUTHBEARER are not offered: kafka-python needs extra packages for them.
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        # A host without a port.
        ({"bootstrap_servers": "broker.example.org"}, "bootstrap_servers"),
        # A typo in a key must not pass silently.
        ({"bootstrap_server": "k:9092"}, "unknown setting"),
    ],
)
def test_invalid_kafka_settings_are_configuration_errors(kafka, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(overrides={"kafka": kafka})


def test_tls_files_must_exist(tmp_path):
    with pytest.raises(ConfigurationError, match="ssl_cafile"):
        load_settings(
            overrides={
                "kafka": {"security_protocol": "SSL", "ssl_cafile": str(tmp_path / "missing.pem")}
            }
        )


def test_tls_and_sasl_reach_the_client_options(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=SECRET,
        ssl_cafile=ca,
        ssl_check_hostname=False,
    )
    options = settings.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == SECRET
    assert options["ssl_cafile"] == str(ca)
    assert options["ssl_check_hostname"] is False


def test_the_password_is_never_printed():
    settings = load_settings(
        overrides={
            "kafka": {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "svc",
                "sasl_password": SECRET,
            }
        }
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.kafka)
    assert SECRET not in settings.model_dump_json()


def test_an_error_message_names_the_setting_not_its_value(monkeypatch):
    monkeypatch.setenv("AUDITOR_KAFKA__SASL_PASSWORD", SECRET)
    monkeypatch.setenv("AUDITOR_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("AUDITOR_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("AUDITOR_KAFKA__REQUEST_TIMEOUT_MS", "not-a-number")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "kafka.request_timeout_ms" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match=r"cannot read config file .*nope\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_a_config_file_that_is_not_toml_says_where(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(f'[kafka]\nsasl_password = "{SECRET}\n')
    with pytest.raises(ConfigurationError, match="line 2") as caught:
        load_settings(config)
    assert SECRET not in str(caught.value)


def test_two_roles_cannot_share_a_topic():
    with pytest.raises(ConfigurationError, match="distinct"):
        load_settings(overrides={"topics": {"logs": {"name": "cds.authz"}}})


def test_topic_configs_carry_the_retention():
    settings = AuditorSettings()
    assert settings.topics.authz.topic_configs()["retention.ms"] == str(7 * 24 * 3600 * 1000)


def test_the_spool_defaults_under_the_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings = load_settings(overrides={"kafka": {"client_id": "svc-a"}})
    assert settings.emitter.resolved_spool_dir("svc-a") == (
        tmp_path / "cds-hooks-auditor" / "spool" / "svc-a"
    )
