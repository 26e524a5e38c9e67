"""The ``auditor`` command line."""
