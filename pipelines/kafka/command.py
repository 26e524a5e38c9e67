"""``auditor topics create|list``: create the pipeline's topics, show what the cluster has."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipelines.kafka.admin import ensure_topics, list_topics
from pipelines.settings import AuditorSettings, load_settings


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--kafka`` and ``--config``, shared by the commands that talk to Kafka."""
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="bootstrap servers (overrides AUDITOR_KAFKA__BOOTSTRAP_SERVERS and the config file)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: $AUDITOR_CONFIG, if set)",
    )


def settings_from_args(args: argparse.Namespace) -> AuditorSettings:
    """Settings from ``--config``, the environment and ``--kafka``, in rising priority.

    Raises:
        ConfigurationError: As ``load_settings``.
    """
    overrides: dict[str, Any] = {}
    if args.kafka:
        overrides["kafka"] = {"bootstrap_servers": args.kafka}
    return load_settings(args.config, overrides=overrides)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor topics``."""
    actions = parser.add_subparsers(dest="topics_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create the pipeline's topics (existing ones are reported, not changed)",
        description="Create the authz, logs, findings, alerts, dead-letter and detector-state "
        "topics with their configured partitions, replication and retention. Idempotent.",
    )
    add_connection_options(create)
    listing = actions.add_parser("list", help="list the cluster's topics")
    add_connection_options(listing)
    listing.add_argument("--internal", action="store_true", help="include __internal topics")


def run(args: argparse.Namespace) -> int:
    """Carry out ``auditor topics create`` or ``auditor topics list``."""
    settings = settings_from_args(args)
    out = sys.stdout
    if args.topics_action == "create":
        report = ensure_topics(settings)
        specs = {spec.name: spec for spec in settings.topics.all()}
        for name in report.created:
            spec = specs[name]
            replication = spec.replication_factor or "cluster default"
            out.write(
                f"created  {name}  partitions={spec.partitions} replication={replication} "
                f"retention.ms={spec.retention_ms}\n"
            )
        for name in report.existing:
            out.write(f"exists   {name}\n")
        for line in report.drift:
            out.write(f"warning: {line} (not changed)\n")
        return 0
    infos = list_topics(settings, internal=args.internal)
    ours = {spec.name for spec in settings.topics.all()}
    for info in infos:
        mark = "*" if info.name in ours else " "
        out.write(
            f"{mark} {info.name}  partitions={info.partitions} "
            f"replication={info.replication_factor}\n"
        )
    missing = sorted(ours - {info.name for info in infos})
    for name in missing:
        out.write(f"  {name}  (configured, missing: run 'auditor topics create')\n")
    return 0
