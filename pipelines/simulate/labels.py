"""The incidents a simulation can inject, and the ground truth it writes about each.

A label says what was injected (type and variant), who was involved (the client's ``iss``,
the service, the attacker's address), when (the first and last record it produced) and
what the auditor should report (detector, kind and rule). It carries keyed fingerprints
of the leaked or forged values, never the values: a label file is as safe to share as a
finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from auditor.errors import ConfigurationError, InputError
from auditor.models.base import UtcDatetime
from auditor.models.events import Fingerprint
from auditor.vocabulary import DetectorName, PhiKind, TokenKind


class IncidentType(StrEnum):
    """The kinds of incident the simulator injects."""

    REPLAY_BURST = "replay_burst"
    TOKEN_LEAK = "token_leak"  # noqa: S105 - the name of an incident type, not a token
    PHI_LEAK = "phi_leak"
    ALG_ATTACK = "alg_attack"
    UNKNOWN_KID_STORM = "unknown_kid_storm"
    CLOCK_SKEW = "clock_skew"
    FAILURE_SPIKE = "failure_spike"
    WRONG_SERVICE = "wrong_service"
    SSRF_FHIR_SERVER = "ssrf_fhir_server"
    OVERBROAD_SCOPES = "overbroad_scopes"
    TLS_1_0 = "tls_1_0"


VARIANTS: Final[dict[IncidentType, tuple[str, ...]]] = {
    IncidentType.TOKEN_LEAK: (
        TokenKind.JWT.value,
        TokenKind.BEARER_TOKEN.value,
        TokenKind.URL_TOKEN.value,
        TokenKind.PRIVATE_JWK.value,
    ),
    IncidentType.PHI_LEAK: tuple(kind.value for kind in PhiKind),
    IncidentType.ALG_ATTACK: ("none", "hs256"),
}
"""Types that come in variants; ``type`` alone means every variant."""


class Expected(BaseModel):
    """What the auditor should report for an incident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: DetectorName
    kind: str
    rule: str | None = None


_EXPECTED: Final[dict[IncidentType, tuple[DetectorName, str, str | None]]] = {
    IncidentType.REPLAY_BURST: (DetectorName.REPLAY_BURST, "jwt_replay", "jti_replay"),
    IncidentType.ALG_ATTACK: (
        DetectorName.VALIDATION_ANOMALY,
        "attack_signature",
        "attack_signature",
    ),
    IncidentType.UNKNOWN_KID_STORM: (
        DetectorName.VALIDATION_ANOMALY,
        "attack_signature",
        "attack_signature",
    ),
    IncidentType.CLOCK_SKEW: (DetectorName.VALIDATION_ANOMALY, "clock_skew", "clock_skew_drift"),
    IncidentType.FAILURE_SPIKE: (
        DetectorName.VALIDATION_ANOMALY,
        "failure_spike",
        "failure_rate_spike",
    ),
    IncidentType.WRONG_SERVICE: (
        DetectorName.REPLAY_BURST,
        "audience_misuse",
        "token_wrong_audience",
    ),
    IncidentType.SSRF_FHIR_SERVER: (
        DetectorName.POLICY,
        "policy_violation",
        "fhir_server_not_allowlisted",
    ),
    IncidentType.OVERBROAD_SCOPES: (DetectorName.POLICY, "policy_violation", "scope_too_broad"),
    IncidentType.TLS_1_0: (DetectorName.POLICY, "policy_violation", "tls_below_minimum"),
}


@dataclass(frozen=True, slots=True, order=True)
class IncidentSpec:
    """One incident to inject: a type and, for types with variants, one variant."""

    type: IncidentType
    variant: str | None = None

    @property
    def name(self) -> str:
        """``type`` or ``type:variant``."""
        return self.type.value if self.variant is None else f"{self.type.value}:{self.variant}"

    @property
    def expected(self) -> Expected:
        """What the auditor should report for it."""
        if self.type is IncidentType.TOKEN_LEAK:
            return Expected(detector=DetectorName.LEAKED_TOKEN, kind=str(self.variant))
        if self.type is IncidentType.PHI_LEAK:
            return Expected(detector=DetectorName.PHI_IN_LOGS, kind=str(self.variant))
        detector, kind, rule = _EXPECTED[self.type]
        return Expected(detector=detector, kind=kind, rule=rule)


def all_incidents() -> tuple[IncidentSpec, ...]:
    """Every incident type, each variant once, in catalogue order."""
    specs: list[IncidentSpec] = []
    for kind in IncidentType:
        variants: Sequence[str | None] = VARIANTS.get(kind, (None,))
        specs.extend(IncidentSpec(kind, variant) for variant in variants)
    return tuple(specs)


def parse_incidents(text: str) -> tuple[IncidentSpec, ...]:
    """Read ``--incidents``: ``all``, ``none``, or a comma list of ``type[:variant]``.

    Raises:
        ConfigurationError: An unknown type or variant (the message lists the known ones).
    """
    text = text.strip()
    if text == "all":
        return all_incidents()
    if text in {"", "none"}:
        return ()
    chosen: list[IncidentSpec] = []
    for item in (part.strip() for part in text.split(",")):
        name, _, variant = item.partition(":")
        try:
            kind = IncidentType(name)
        except ValueError:
            known = ", ".join(t.value for t in IncidentType)
            raise ConfigurationError(f"unknown incident type {name!r}; known: {known}") from None
        variants = VARIANTS.get(kind)
        if variant and (variants is None or variant not in variants):
            allowed = ", ".join(variants or ()) or "none"
            raise ConfigurationError(f"{name} has no variant {variant!r}; variants: {allowed}")
        if variant:
            chosen.append(IncidentSpec(kind, variant))
        else:
            chosen.extend(IncidentSpec(kind, v) for v in (variants or (None,)))
    return tuple(dict.fromkeys(chosen))


class Label(BaseModel):
    """The ground truth about one injected incident (fingerprints only, never values)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incident_id: str
    type: IncidentType
    variant: str | None = None
    description: str
    client: str | None = None
    service: str | None = None
    peer: str | None = None
    start: UtcDatetime
    end: UtcDatetime
    expected: Expected
    fingerprints: tuple[Fingerprint, ...] = ()
    events: int = 0
    logs: int = 0

    @property
    def name(self) -> str:
        """``type`` or ``type:variant``."""
        return self.type.value if self.variant is None else f"{self.type.value}:{self.variant}"


def write_labels(path: Path, labels: Iterable[Label]) -> None:
    """Write labels as JSON lines, in time order."""
    ordered = sorted(labels, key=lambda label: (label.start, label.incident_id))
    path.write_text("".join(label.model_dump_json() + "\n" for label in ordered), "utf-8")


def read_labels(path: Path) -> list[Label]:
    """Read a label file.

    Raises:
        InputError: The file cannot be read or a line is not a label.
    """
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the labels {path}: {exc.strerror}") from None
    labels = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            labels.append(Label.model_validate_json(line))
        except ValueError:
            raise InputError(f"{path}:{number} is not a label") from None
    return labels
