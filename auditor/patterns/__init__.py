"""The shared pattern library: what counts as a token, a key or PHI, in text and structures.

The Redactor (which replaces) and the ``leaked_token`` / ``phi_in_logs`` detectors (which
report) both use it, so what one catches the other catches. Pure ``re`` and the standard
library; linear-time on hostile input; no network.

Typical use::

    from auditor.patterns import default_library

    library = default_library()
    for match in library.find_in_text(line):      # text: spans
        ...match.kind, match.rule, match.span, match.facts, fingerprint(match.value)
    result = library.scan(json.loads(line))       # structures: JSON paths
    for found in result.matches:
        ...found.location, found.kind, found.rule
"""

from auditor.patterns.jwt import CLAIM_FACTS, HEADER_FACTS, JwtInfo, inspect_jwt
from auditor.patterns.keys import (
    DEFAULT_KEY_RULES,
    KeyRule,
    Scope,
    ValueShape,
    key_rules,
    normalize_key,
)
from auditor.patterns.library import PatternLibrary, default_library, find_in_text, scan
from auditor.patterns.matches import Fact, FieldMatch, JsonPath, Kind, Match, json_path
from auditor.patterns.prefilter import Prefilter, fold
from auditor.patterns.rules import BUILTIN_RULES, Rule, TextRule
from auditor.patterns.shapes import PERSON_RESOURCES
from auditor.patterns.validators import (
    is_placeholder,
    looks_like_credential,
    nanp_is_valid,
    parse_birth_date,
    ssn_is_valid,
)
from auditor.patterns.walk import Limit, LimitReason, ScanResult, Visitor, Walker

__all__ = [
    "BUILTIN_RULES",
    "CLAIM_FACTS",
    "DEFAULT_KEY_RULES",
    "HEADER_FACTS",
    "PERSON_RESOURCES",
    "Fact",
    "FieldMatch",
    "JsonPath",
    "JwtInfo",
    "KeyRule",
    "Kind",
    "Limit",
    "LimitReason",
    "Match",
    "PatternLibrary",
    "Prefilter",
    "Rule",
    "ScanResult",
    "Scope",
    "TextRule",
    "ValueShape",
    "Visitor",
    "Walker",
    "default_library",
    "find_in_text",
    "fold",
    "inspect_jwt",
    "is_placeholder",
    "json_path",
    "key_rules",
    "looks_like_credential",
    "nanp_is_valid",
    "normalize_key",
    "parse_birth_date",
    "scan",
    "ssn_is_valid",
]
