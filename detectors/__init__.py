"""Detector implementations: pure functions of events and state, no I/O."""

__all__: list[str] = []
