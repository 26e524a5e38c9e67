"""Building findings without paying for pydantic validation on every one — safely.

``Finding(...)`` validates each field and runs the credential check on each text; for a
finding built by our own code from typed values that costs ~40 us, more than everything
else a stream detector does for the event that produced it. ``checked_finding`` makes the
same decision cheaply: it checks what the model's constraints check (types, lengths,
patterns, the facts' limits) and what its validators check (no credential in a title, an
excerpt, a location, an origin or a fact), remembering the texts it found clean, and then
builds the instance as ``model_construct`` does. Whenever a value is anything but plainly
valid — an unexpected type, a text too long, a credential, even a credential-shaped look-
alike — it hands the values to the model itself, so the outcome (an instance, or the
``ValidationError`` naming the field) is exactly the model's.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final, get_args

from auditor.models import Finding
from auditor.models.findings import (
    MAX_FACT_NAME,
    MAX_FACT_TEXT,
    MAX_FACTS,
    refuse_credentials,
)
from auditor.vocabulary import DetectorName, Severity

__all__ = ["FAITHFUL", "checked_finding", "construct_finding", "raw_finding"]

_FIELDS: Final = tuple(Finding.model_fields)
_FIELD_SET: Final = frozenset(_FIELDS)
_new = Finding.__new__
_set = object.__setattr__


def _constraint(name: str, attr: str) -> Any:
    """The model's own ``attr`` constraint (``max_length``, ``pattern``) on field ``name``."""
    field = Finding.model_fields[name]
    stack: list[object] = [*field.metadata, field.annotation]
    while stack:
        item = stack.pop()
        value = None if isinstance(item, type) else getattr(item, attr, None)
        if value is not None:
            return value
        stack.extend(get_args(item))
    message = f"Finding.{name} has no {attr}: detectors/building.py must learn the model anew"
    raise AssertionError(message)


# The limits and patterns are read from the model, so the fast path follows the contract.
_FINDING_ID: Final = re.compile(_constraint("finding_id", "pattern"))
_FINGERPRINT: Final = re.compile(_constraint("fingerprint", "pattern"))
_RULE: Final = re.compile(_constraint("rule", "pattern"))
_KIND: Final = re.compile(_constraint("kind", "pattern"))
_MAX_TITLE: Final[int] = _constraint("title", "max_length")
_MAX_ISS: Final[int] = _constraint("client_iss", "max_length")
_MAX_SERVICE: Final[int] = _constraint("service_id", "max_length")
_MAX_LOCATION: Final[int] = _constraint("location", "max_length")
_MAX_REFERENCE: Final[int] = _constraint("reference", "max_length")
_MAX_ORIGIN: Final[int] = _constraint("origin", "max_length")
_MAX_EVIDENCE: Final[int] = _constraint("evidence", "max_length")
_MAX_STR: Final[float] = Finding.model_config.get("str_max_length") or math.inf

_CLEAN_LIMIT: Final = 4096
_MAX_REMEMBERED: Final = 512
_clean: set[str] = set()
"""Texts the credential check passed, like ``re``'s cache: bounded, process memory only."""

_PLAIN: Final = frozenset({int, float, bool, type(None)})


def raw_finding(values: dict[str, object]) -> Finding:
    """Build a finding as ``Finding.model_construct`` does, unchecked: ``values`` is trusted.

    ``values`` becomes the finding's ``__dict__`` as it is, so it must hold every field, in
    the contract's order, and nothing else. The model has no aliases, defaults to resolve or
    private attributes, so this is all ``model_construct`` does: ~2 us instead of ~7-14 us.
    """
    finding = _new(Finding)
    _set(finding, "__dict__", values)
    _set(finding, "__pydantic_fields_set__", set(_FIELD_SET))
    _set(finding, "__pydantic_extra__", None)
    _set(finding, "__pydantic_private__", None)
    return finding


def construct_finding(values: dict[str, object]) -> Finding:
    """A finding from values already checked, every field in the contract's order.

    ``raw_finding`` while it builds what pydantic builds (checked once at import), else
    ``Finding.model_construct``.
    """
    if FAITHFUL:
        return raw_finding(values)
    return Finding.model_construct(**values)  # type: ignore[arg-type]


def checked_finding(values: dict[str, object]) -> Finding:
    """The finding ``Finding(**values)`` builds, or the error it raises; fast when valid.

    Args:
        values: Every field of the finding.

    Raises:
        pydantic.ValidationError: As ``Finding(**values)`` would.
    """
    if _plainly_valid(values) and _texts_clean(values):
        return construct_finding(values)
    return Finding(**values)


def _short(value: object, limit: float) -> bool:
    return value is None or (type(value) is str and len(value) <= limit)


def _aware_utc(value: object) -> bool:
    return type(value) is datetime and value.tzinfo is UTC


def _plainly_valid(v: dict[str, object]) -> bool:  # noqa: C901, PLR0911, PLR0912 - one check per field
    """Whether every field is of the exact type and within the limits the model sets."""
    if tuple(v) != _FIELDS:  # every field, in order (what ``raw_finding`` requires)
        return False
    finding_id = v["finding_id"]
    if type(finding_id) is not str or not _FINDING_ID.fullmatch(finding_id):
        return False
    rule, kind = v["rule"], v["kind"]
    if type(rule) is not str or not _RULE.fullmatch(rule):
        return False
    if type(kind) is not str or not _KIND.fullmatch(kind):
        return False
    if type(v["detector"]) is not DetectorName or type(v["severity"]) is not Severity:
        return False
    fingerprint = v["fingerprint"]
    if fingerprint is not None and (
        type(fingerprint) is not str or not _FINGERPRINT.fullmatch(fingerprint)
    ):
        return False
    title = v["title"]
    if type(title) is not str or len(title) > _MAX_TITLE:
        return False
    if not (
        _short(v["client_iss"], _MAX_ISS)
        and _short(v["service_id"], _MAX_SERVICE)
        and _short(v["location"], _MAX_LOCATION)
        and _short(v["reference"], _MAX_REFERENCE)
        and _short(v["safeguard"], _MAX_STR)
        and _short(v["origin"], _MAX_ORIGIN)
    ):
        return False
    evidence = v["evidence"]
    if type(evidence) is not str or len(evidence) > _MAX_EVIDENCE:
        return False
    if not _aware_utc(v["observed_at"]):
        return False
    for name in ("window_start", "window_end"):
        if v[name] is not None and not _aware_utc(v[name]):
            return False
    count, revision = v["count"], v["revision"]
    if type(count) is not int or count < 1 or type(revision) is not int or revision < 0:
        return False
    event_ids = v["event_ids"]
    if type(event_ids) is not tuple or not all(
        type(e) is str and len(e) <= _MAX_STR for e in event_ids
    ):
        return False
    return _facts_plain(v["facts"])


def _facts_plain(facts: object) -> bool:
    if type(facts) is not dict or len(facts) > MAX_FACTS:
        return False
    for name, fact in facts.items():
        if type(name) is not str or len(name) > MAX_FACT_NAME:
            return False
        kind = type(fact)
        if kind is str:
            if len(fact) > MAX_FACT_TEXT:
                return False
        elif kind is tuple:
            if not all(type(t) is str and len(t) <= _MAX_STR for t in fact):
                return False
        elif kind not in _PLAIN:
            return False
    return True


def _texts_clean(v: dict[str, object]) -> bool:
    """Whether the credential check passes every text the model's validators check."""
    texts = [v["title"], v["evidence"], v["location"], v["origin"]]
    for fact in v["facts"].values():  # type: ignore[attr-defined]
        if type(fact) is str:
            texts.append(fact)
        elif type(fact) is tuple:
            texts.extend(fact)
    clean = _clean
    for text in texts:
        if not text or text in clean:
            continue
        try:
            refuse_credentials("text", text)  # type: ignore[arg-type]
        except ValueError:
            return False  # the model raises its own error, naming the field
        if len(clean) >= _CLEAN_LIMIT:
            clean.clear()
        if len(text) <= _MAX_REMEMBERED:  # type: ignore[arg-type]
            clean.add(text)  # type: ignore[arg-type]
    return True


def _faithful() -> bool:
    """Whether ``raw_finding`` builds what pydantic builds (checked once at import)."""
    sample: dict[str, object] = {
        "finding_id": "0" * 32,
        "detector": DetectorName.POLICY,
        "rule": "alg_none_or_hmac",
        "kind": "policy_violation",
        "severity": Severity.HIGH,
        "observed_at": datetime(2026, 1, 1, tzinfo=UTC),
        "title": "t",
        "client_iss": None,
        "service_id": None,
        "fingerprint": "k1:" + "0" * 32,
        "location": "$",
        "origin": None,
        "event_ids": ("e",),
        "evidence": "",
        "safeguard": None,
        "reference": None,
        "window_start": None,
        "window_end": None,
        "count": 1,
        "revision": 0,
        "facts": {"n": 1, "names": ("a",)},
    }
    if tuple(sample) != _FIELDS or Finding.__pydantic_post_init__ is not None:
        return False
    fast, slow = raw_finding(dict(sample)), Finding(**sample)
    return fast == slow and fast.model_dump() == slow.model_dump()


FAITHFUL: Final = _faithful()
"""Whether ``raw_finding`` builds exactly what pydantic builds, in this pydantic version."""
