"""Sources, the detector runtime, sinks, the Kafka broker helper and self-telemetry."""

__all__: list[str] = []
