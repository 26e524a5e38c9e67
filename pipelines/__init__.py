"""Sources, the detector runtime, sinks, the Kafka broker helper and self-telemetry."""

# First: whether compiled modules are used is decided before any of them loads.
import auditor._native  # noqa: F401 - imported for that decision

__all__: list[str] = []
