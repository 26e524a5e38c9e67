"""``auditor demo``: simulated traffic with every incident, the embedded pipeline, the report.

Imported lazily by the ``auditor`` command table; the stages live in ``session``.
"""
