"""Topic administration: create the pipeline's topics idempotently, list what exists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError, TopicAlreadyExistsError

from auditor.errors import UnavailableError
from pipelines.kafka.clients import open_admin
from pipelines.settings import AuditorSettings, TopicSpec


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    replication_factor: int


@dataclass(frozen=True, slots=True)
class TopicsReport:
    """What ``ensure_topics`` did: created, already there, and configured-vs-actual drift."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    drift: tuple[str, ...] = field(default=())
    """One line per existing topic whose partition count differs from the configuration."""


def ensure_topics(
    settings: AuditorSettings,
    specs: Iterable[TopicSpec] | None = None,
    *,
    timeout_ms: int = 30_000,
) -> TopicsReport:
    """Create each topic that does not exist yet; existing topics are reported, not errors.

    Waits until every created topic has a leader for each partition, so producers can
    use them as soon as this returns. Existing topics are not altered: a differing
    partition count is reported as drift (Kafka can only grow partitions, and growing
    them moves keys to other partitions, which the stateful detectors must know about).

    Args:
        settings: Connection and topic configuration.
        specs: The topics; all of ``settings.topics`` when not given.
        timeout_ms: How long the broker may take.

    Raises:
        UnavailableError: The cluster cannot be reached or refused the request.
    """
    wanted = {spec.name: spec for spec in (specs if specs is not None else settings.topics.all())}
    admin = open_admin(settings)
    try:
        present = set(admin.list_topics())
        missing = [spec for name, spec in wanted.items() if name not in present]
        created: list[str] = []
        if missing:
            request: dict[str, dict[str, Any]] = {
                spec.name: {
                    "num_partitions": spec.partitions,
                    "replication_factor": spec.replication_factor or -1,
                    "configs": spec.topic_configs(),
                }
                for spec in missing
            }
            result = admin.create_topics(request, timeout_ms=timeout_ms, raise_errors=False)
            for topic in result["topics"]:
                if topic["error_code"] == 0:
                    created.append(topic["name"])
                elif topic["error_code"] == TopicAlreadyExistsError.errno:
                    present.add(topic["name"])  # created concurrently by someone else
                else:
                    message = topic.get("error_message") or f"error code {topic['error_code']}"
                    raise UnavailableError(f"creating topic {topic['name']} failed: {message}")
            if created:
                admin.wait_for_topics(created, timeout_ms=timeout_ms)
        existing = sorted(name for name in wanted if name in present)
        drift = []
        for info in _describe(admin, existing):
            spec = wanted[info.name]
            if info.partitions != spec.partitions:
                drift.append(
                    f"{info.name}: {info.partitions} partitions, configured {spec.partitions}"
                )
    except KafkaError as exc:
        raise UnavailableError(f"topic administration failed: {type(exc).__name__}") from None
    finally:
        admin.close()
    return TopicsReport(
        created=tuple(sorted(created)), existing=tuple(existing), drift=tuple(drift)
    )


def list_topics(settings: AuditorSettings, *, internal: bool = False) -> tuple[TopicInfo, ...]:
    """Every topic of the cluster with its partitions and replication factor, by name.

    Raises:
        UnavailableError: The cluster cannot be reached.
    """
    admin = open_admin(settings)
    try:
        names = [n for n in admin.list_topics() if internal or not n.startswith("__")]
        return tuple(sorted(_describe(admin, names), key=lambda info: info.name))
    except KafkaError as exc:
        raise UnavailableError(f"listing topics failed: {type(exc).__name__}") from None
    finally:
        admin.close()


def _describe(admin: Any, names: list[str]) -> list[TopicInfo]:
    if not names:
        return []
    infos = []
    for topic in admin.describe_topics(names):
        partitions = topic.get("partitions") or []
        replicas = max((len(p.get("replica_nodes") or ()) for p in partitions), default=0)
        infos.append(TopicInfo(topic["name"], len(partitions), replicas))
    return infos
