"""The public API is what ``__all__`` lists, and every listed name exists."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["auditor", "auditor.patterns", "auditor.redaction"])
def test_every_exported_name_exists(module) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(set(mod.__all__))
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_the_redactor_is_exported_from_the_kernel() -> None:
    import auditor

    assert "Redactor" in auditor.__all__
    assert "RedactorConfig" in auditor.__all__
