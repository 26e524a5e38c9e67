"""The text rules: each finds one kind of secret or PHI in a string.

A rule is a regular expression plus a check that validates a candidate and says what to
record. Every pattern is safe on hostile input: a match can only start at a boundary
(a lookbehind guard), repetition is possessive or bounded, and a rejected candidate
resumes the search one character later, so the work per string is linear in its length.

Each rule declares its prefilter triggers (folded literals, see
`auditor.patterns.prefilter`) and positive examples; a property test checks that every
example is found by its rule and trips the prefilter.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from auditor.patterns.jwt import JwtInfo, inspect_segments
from auditor.patterns.matches import NO_FACTS, SAFEGUARD_OF_KIND, Fact, Kind, Match
from auditor.patterns.prefilter import ANCHOR_BYTES
from auditor.patterns.validators import (
    EXAMPLE_SSNS,
    MONTH_NAMES,
    email_domain_is_valid,
    is_placeholder,
    looks_like_credential,
    nanp_digits_are_valid,
    nanp_is_fictional,
    nanp_is_valid,
    parse_birth_date,
    ssn_digits_are_valid,
    ssn_is_valid,
)
from auditor.vocabulary import PhiKind, SafeHarbor, TokenKind

Check = Callable[[re.Match[str], str], Match | None]

_FOLLOWERS: Final = (" ", ":", "=", "#", '"', "'", "\\", "_", "-", ".", ",")
"""What follows a keyword in text; appended to keyword triggers whose anchor would
otherwise be their last byte (see auditor.patterns.prefilter.anchor_of)."""

# Priorities: lower wins where matches overlap. A token inside a keyed value is named by
# the token rule ("Authorization: Bearer eyJ…" is a jwt), PHI shapes before keywords.
P_JWT: Final = 0
P_KEY_MATERIAL: Final = 1
P_CREDENTIAL: Final = 2
P_KEYED_TOKEN: Final = 3
P_PHI_SHAPE: Final = 4
P_PHI_KEYWORD: Final = 5
P_KEYED_PHI: Final = 6
P_PHI_WEAK: Final = 7


class Rule(Protocol):
    """What the library needs of a text rule: a name, triggers, examples and a finder."""

    @property
    def name(self) -> str:
        """Unique among rules."""
        ...

    @property
    def triggers(self) -> tuple[str, ...]:
        """Folded literals, one of which occurs in any text the rule matches."""
        ...

    @property
    def examples(self) -> tuple[str, ...]:
        """Texts in which the rule finds something."""
        ...

    def find(self, text: str) -> Iterator[Match]:
        """Yield matches left to right, not overlapping; never raise; linear time."""
        ...


@dataclass(frozen=True, slots=True)
class TextRule:
    """One text rule.

    Attributes:
        name: The rule's id, unique among rules. Its matches carry this id as their
            ``rule`` unless the rule tells forms apart (``jwt`` reports ``jwt.jws`` and
            ``jwt.jwe``). Match rule ids are contracts: they reach findings and the store.
        kind: What it finds.
        pattern: Where candidates are.
        check: Validates a candidate and builds the `Match`, or rejects it with ``None``.
        triggers: Folded literals of which at least one occurs in any text the rule
            matches (lower case, digits written as ``0``, at least two characters).
        examples: Texts in which the rule must find something.
        requires: Literals of which one must occur in the text for the rule to run at
            all (a cheap case-sensitive pre-check, e.g. ``"kty"`` for JWK members).
        anchor: A literal every match of ``pattern`` holds, starting at most ``reach``
            characters after the match starts (the ``@`` of an e-mail address). The
            search then starts ``reach`` characters before the next anchor instead of
            trying every position before it (where no match can start), and stops when
            no anchor is left: the same matches, found with less scanning.
        reach: See ``anchor``.
    """

    name: str
    kind: Kind
    pattern: re.Pattern[str]
    check: Check
    triggers: tuple[str, ...]
    examples: tuple[str, ...]
    requires: tuple[str, ...] = field(default=())
    anchor: str = ""
    reach: int = 0

    def find(self, text: str) -> Iterator[Match]:
        """Yield the matches of this rule in ``text``, left to right, not overlapping."""
        if self.requires and not any(r in text for r in self.requires):
            return
        search = self.pattern.search
        check = self.check
        anchor, reach = self.anchor, self.reach
        pos = 0
        while True:
            if anchor:
                # A match starting at or after pos holds an anchor at or after pos, at
                # most reach characters after its start: none starts before this.
                at = text.find(anchor, pos)
                if at < 0:
                    return
                m = search(text, max(pos, at - reach))
            else:
                m = search(text, pos)
            if m is None:
                return
            found = check(m, text)
            if found is None:
                pos = m.start() + 1
            else:
                yield found
                pos = max(found.end, m.start() + 1)


# --- helpers ------------------------------------------------------------------------------


def _match(  # noqa: PLR0917 - a record, built in one place
    kind: Kind,
    rule: str,
    start: int,
    end: int,
    value: str,
    priority: int,
    *,
    facts: Mapping[str, Fact] | None = None,
    safeguard: SafeHarbor | None = None,
    confidence: float = 1.0,
) -> Match:
    return Match(
        kind,
        rule,
        start,
        end,
        value,
        facts or NO_FACTS,
        safeguard or SAFEGUARD_OF_KIND.get(kind),
        confidence,
        priority,
    )


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _example_jwt(header: dict[str, object], claims: dict[str, object] | None = None) -> str:
    """A syntactically real JWT for the examples (the signature is filler)."""
    head = _b64url(json.dumps(header, separators=(",", ":")).encode())
    if claims is None:  # JWE: encrypted key, iv, ciphertext, tag
        parts = (bytes(range(40)), bytes(12), b"x" * 48, bytes(16))
        return ".".join([head, *map(_b64url, parts)])
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64url(bytes(range(64)))}"


EXAMPLE_JWS: Final = _example_jwt(
    {"alg": "ES384", "typ": "JWT", "kid": "ehr-2026-01"},
    {
        "iss": "https://ehr.example.org",
        "aud": "https://cds.example.com/cds-services/patient-greeter",
        "exp": 1764324300,
        "iat": 1764324000,
        "jti": "3f1c6a52-0001",
        "tenant": "t-01",
    },
)
EXAMPLE_JWE: Final = _example_jwt({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "k2"})

# --- tokens -------------------------------------------------------------------------------

# The boundary is checked after the literal ``eyJ`` (a lookbehind over it and the byte
# before it), not before: a pattern that starts with a literal is searched with a fast
# scan for it, one that starts with a lookbehind tries every position (~40 ns each; 38 us
# on the base64 text of a JWT, where the prefilter's folded ``eyj`` trips this rule).
JWT_RE: Final = re.compile(
    r"eyJ(?:(?<![A-Za-z0-9_-]eyJ)|(?<=%[0-9A-Fa-f]{2}eyJ))"
    r"[A-Za-z0-9_-]{4,}+(?:\.[A-Za-z0-9_-]*+){1,5}+"
)


def _read_jwt(candidate: str) -> tuple[str, JwtInfo] | None:
    """The token at the start of a `JWT_RE` match and what it says, if it is one."""
    parts = candidate.split(".")
    # Try the longest form first; a sentence may end with a dot right after a token.
    for count in (5, 3, 2):
        if len(parts) < count:
            continue
        if len(parts) == count:
            token, info = candidate, inspect_segments(parts)
        else:
            token, info = ".".join(parts[:count]), inspect_segments(parts[:count])
        if info is None or (count == 5 and info.form != "jwe"):  # noqa: PLR2004
            continue
        return token, info
    return None


def _jwt_confidence(info: JwtInfo) -> float:
    return 1.0 if info.claims_readable or info.form == "jwe" else 0.9


def _check_jwt(m: re.Match[str], _text: str) -> Match | None:
    found = _read_jwt(m.group())
    if found is None:
        return None
    token, info = found
    start = m.start()
    return _match(
        TokenKind.JWT,
        "jwt.jwe" if info.form == "jwe" else "jwt.jws",
        start,
        start + len(token),
        token,
        P_JWT,
        facts=info.facts,
        confidence=_jwt_confidence(info),
    )


JWT_RULE: Final = TextRule(
    name="jwt",
    kind=TokenKind.JWT,
    pattern=JWT_RE,
    check=_check_jwt,
    triggers=("eyj",),  # base64url of '{"'
    examples=(
        f"Authorization: Bearer {EXAMPLE_JWS}",
        f"token={EXAMPLE_JWS}.",
        f"jwe {EXAMPLE_JWE} sent",
        f"%22{EXAMPLE_JWS}%22",
    ),
)

# base64("eyJ") at the three byte alignments: the characters fixed by those three bytes.
_B64_JWT_SIGNATURES: Final = ("ZXlK", "V5S", "leU")
B64_RUN_RE: Final = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}+={0,2}+")
MAX_B64_RUN: Final = 1 << 20


def _b64_decode_run(run: str) -> bytes | None:
    run = run.rstrip("=").replace("-", "+").replace("_", "/")
    if len(run) % 4 == 1:
        run = run[:-1]
    try:
        return base64.b64decode(run + "=" * (-len(run) % 4))
    except (binascii.Error, ValueError):
        return None


def _check_jwt_b64(m: re.Match[str], _text: str) -> Match | None:
    run = m.group()
    if len(run) > MAX_B64_RUN or not any(sig in run for sig in _B64_JWT_SIGNATURES):
        return None
    raw = _b64_decode_run(run)
    if raw is None:
        return None
    inner_text = raw.decode("latin-1")
    # The first token `JWT_RULE` would find in the decoded text, without building its match.
    pos = 0
    while (inner := JWT_RE.search(inner_text, pos)) is not None:
        found = _read_jwt(inner.group())
        if found is None:
            pos = inner.start() + 1
            continue
        token, info = found
        return _match(
            TokenKind.JWT,
            "jwt.base64",
            m.start(),
            m.end(),
            token,
            P_JWT,
            facts=info.facts,
            confidence=_jwt_confidence(info),
        )
    return None


JWT_BASE64_RULE: Final = TextRule(
    name="jwt.base64",
    kind=TokenKind.JWT,
    pattern=B64_RUN_RE,
    check=_check_jwt_b64,
    # At offset 0 every header is "ZXlK"; at offsets 1 and 2 the stable characters depend
    # on the header's first member, so the triggers name the common ones (alg, typ, kid,
    # enc, cty, zip, jku), long enough to hold a rare byte that is not their last.
    triggers=(
        "zxlk",
        *("v0sj", "v0sm", "v0sn"),
        *("leupoykd", "leuowzvh", "leupyyvd", "leupsym0", "leupqzeh", "leuo0yvh", "leupxytn"),
    ),
    examples=(
        "x-forwarded-token: " + base64.b64encode(EXAMPLE_JWS.encode()).decode(),
        "blob=" + base64.b64encode(b'{"t":"' + EXAMPLE_JWS.encode() + b'"}').decode(),
        "blob=" + base64.b64encode(b'{"tk":"' + EXAMPLE_JWS.encode() + b'"}').decode(),
        "blob=" + base64.b64encode(b'{"tok":"' + EXAMPLE_JWS.encode() + b'"}').decode(),
    ),
)

_SCHEME_SEP = r"(?:[ \t]++|%20|\+)"
# As for JWT_RE, the boundary is checked after the scheme word (a lookbehind over it and
# the character before it): a search that starts with the word skips ahead to it, one
# that starts with a lookbehind tries every position (twice the time on these lines).
BEARER_RE: Final = re.compile(
    r"(?i:bearer)(?<![A-Za-z0-9_-].{6})" + _SCHEME_SEP + r"(?P<cred>[A-Za-z0-9._~+/-]{1,4096}+=*+)"
)


def _check_bearer(m: re.Match[str], text: str) -> Match | None:
    cred = m.group("cred")
    # `Bearer realm="x"` is a challenge (RFC 6750 §3), not a credential.
    if cred.endswith("=") and text[m.end() : m.end() + 1] == '"':
        return None
    if not looks_like_credential(cred):
        return None
    return _match(
        TokenKind.BEARER_TOKEN, "bearer.credential", m.start("cred"), m.end(), cred, P_CREDENTIAL
    )


BEARER_RULE: Final = TextRule(
    name="bearer.credential",
    kind=TokenKind.BEARER_TOKEN,
    pattern=BEARER_RE,
    check=_check_bearer,
    triggers=("bearer",),
    examples=(
        "Authorization: Bearer 8f3kQ9zLr2VxA7mN1pTq",
        "curl -H 'authorization: bearer ya29.a0AfH6SMBx-example-opaque'",
        "BEARER%20mF_9.B5f-4.1JqM",
    ),
)

BASIC_RE: Final = re.compile(
    r"(?i:basic)(?<![A-Za-z0-9_-].{5})"
    + _SCHEME_SEP
    + r"(?P<cred>[A-Za-z0-9+/]{6,4096}+={0,2}+)(?![A-Za-z0-9+/=_-])"
)
_MIN_PRINTABLE_SHARE: Final = 0.9


def _check_basic(m: re.Match[str], _text: str) -> Match | None:
    cred = m.group("cred")
    try:
        raw = base64.b64decode(cred, validate=True)
    except (binascii.Error, ValueError):
        return None
    if b":" not in raw:
        return None
    printable = sum(32 <= b < 127 for b in raw)  # noqa: PLR2004 - printable ASCII
    if printable < _MIN_PRINTABLE_SHARE * len(raw):
        return None
    return _match(
        TokenKind.BASIC_AUTH, "basic.credential", m.start("cred"), m.end("cred"), cred, P_CREDENTIAL
    )


BASIC_RULE: Final = TextRule(
    name="basic.credential",
    kind=TokenKind.BASIC_AUTH,
    pattern=BASIC_RE,
    check=_check_basic,
    triggers=("basic",),
    examples=(
        "Authorization: Basic " + base64.b64encode(b"cds-client:s3cr3t-Passw0rd").decode(),
        "proxy-authorization=basic " + base64.b64encode(b"svc:hunter2").decode(),
    ),
)

USERINFO_RE: Final = re.compile(
    r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{1,15}+://"
    r"(?P<cred>[^\s/?#@:\"'<>\[\]]{1,256}+:(?P<pw>[^\s/?#@\"'<>]{1,256}+))@"
)


def _check_userinfo(m: re.Match[str], _text: str) -> Match | None:
    pw = m.group("pw")
    if is_placeholder(pw):
        return None
    return _match(
        TokenKind.BASIC_AUTH, "url.userinfo", m.start("cred"), m.end("cred"), pw, P_CREDENTIAL
    )


USERINFO_RULE: Final = TextRule(
    name="url.userinfo",
    kind=TokenKind.BASIC_AUTH,
    pattern=USERINFO_RE,
    check=_check_userinfo,
    triggers=("@",),
    anchor="://",
    reach=16,  # the scheme is at most 16 characters
    examples=("fhir=https://svc-account:Xk29-pass@fhir.example.org/r4/Patient",),
)

CODE_PARAM_RE: Final = re.compile(r"(?<=[?&#])code=(?P<code>[A-Za-z0-9._~%+/-]{1,2048}+)")


def _check_code(m: re.Match[str], _text: str) -> Match | None:
    code = m.group("code")
    if not looks_like_credential(code):
        return None
    return _match(
        TokenKind.URL_TOKEN, "param.code", m.start("code"), m.end("code"), code, P_KEYED_TOKEN
    )


CODE_PARAM_RULE: Final = TextRule(
    name="param.code",
    kind=TokenKind.URL_TOKEN,
    pattern=CODE_PARAM_RE,
    check=_check_code,
    triggers=("?code=", "&code="),
    examples=("GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj",),
)

PEM_BODY: Final = r"(?:[A-Za-z0-9+/=\s:,.]++|\\[nrt]|-(?!----))*+"
"""A PEM body: base64, whitespace, header lines, escaped newlines. Base64 runs are taken
whole (``++``), not a character per repetition, so the engine does one step a run."""
PEM_RE: Final = re.compile(
    r"-----BEGIN(?P<type>[A-Z0-9 ]{0,40})PRIVATE KEY(?: BLOCK)?-----"
    rf"(?P<body>{PEM_BODY})"
    r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?"
)
_MIN_PEM_BODY: Final = 16


def pem_body_text(body: str) -> str:
    r"""A `PEM_BODY` without its whitespace and escaped newlines (``\n``, ``\r``, ``\t``).

    String methods, not a regex substitution: a pattern without a literal prefix is tried
    at every character. A backslash in a `PEM_BODY` always starts one of the escapes, so
    removing them one kind at a time cannot create another.
    """
    body = "".join(body.split())
    if "\\" in body:
        body = body.replace("\\n", "").replace("\\r", "").replace("\\t", "")
    return body


def _check_pem(m: re.Match[str], _text: str) -> Match | None:
    body = pem_body_text(m.group("body"))
    if len(body) < _MIN_PEM_BODY:
        return None
    facts: dict[str, Fact] = {"key_type": m.group("type").strip() or "PKCS8"}
    return _match(
        TokenKind.PRIVATE_KEY, "pem.private_key", m.start(), m.end(), body, P_JWT, facts=facts
    )


PEM_RULE: Final = TextRule(
    name="pem.private_key",
    kind=TokenKind.PRIVATE_KEY,
    pattern=PEM_RE,
    check=_check_pem,
    triggers=("private key",),
    examples=(
        (
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
            "-----END PRIVATE KEY-----"
        ),
        (
            '{"key": "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIOr5bXk0c2VjcmV0LWtleQ==\\n'
            '-----END EC PRIVATE KEY-----"}'
        ),
    ),
)

JWK_MEMBER_RE: Final = re.compile(
    r"(?<![A-Za-z0-9_])(?P<q>\\?[\"'])(?P<member>d|p|q|dp|dq|qi|k)(?P=q)[ \t]{0,3}+:[ \t]{0,3}+"
    r"\\?[\"'](?P<secret>[A-Za-z0-9_-]{8,}+)"
)


def _check_jwk_member(m: re.Match[str], _text: str) -> Match | None:
    facts: dict[str, Fact] = {"member": m.group("member")}
    return _match(
        TokenKind.PRIVATE_JWK,
        "jwk.private_member",
        m.start("secret"),
        m.end("secret"),
        m.group("secret"),
        P_KEY_MATERIAL,
        facts=facts,
    )


JWK_RULE: Final = TextRule(
    name="jwk.private_member",
    kind=TokenKind.PRIVATE_JWK,
    pattern=JWK_MEMBER_RE,
    check=_check_jwk_member,
    triggers=("kty",),
    examples=(
        '{"kty":"EC","crv":"P-384","x":"m2Xq","y":"c8Rw","d":"Vb4y7Jx0c2VjcmV0LWQtdmFsdWU"}',
        "{'kty': 'oct', 'k': 'GawgguFyGrWKav7AX4VKUg'}",
    ),
    requires=("kty",),
)

# --- PHI ----------------------------------------------------------------------------------

SSN_RE: Final = re.compile(r"(?<![0-9A-Za-z-])(\d{3})-(\d{2})-(\d{4})(?![0-9A-Za-z-])")


def _check_ssn(m: re.Match[str], _text: str) -> Match | None:
    if not ssn_is_valid(m[1], m[2], m[3]):
        return None
    digits = m[1] + m[2] + m[3]
    confidence = 0.5 if digits in EXAMPLE_SSNS else 1.0
    return _match(
        PhiKind.SSN, "ssn.dashed", m.start(), m.end(), digits, P_PHI_SHAPE, confidence=confidence
    )


SSN_RULE: Final = TextRule(
    name="ssn.dashed",
    kind=PhiKind.SSN,
    pattern=SSN_RE,
    check=_check_ssn,
    triggers=("000-00-0000",),
    examples=("member 536-22-8714 enrolled", "ssn:536-22-8714"),
)

SSN_KEYWORD_RE: Final = re.compile(
    r"(?<![A-Za-z])(?i:ssn|ss\#|social[ _-]?security(?:[ _-]?(?:number|no\.?|num|\#))?)"
    r"[\"']?[ \t]{0,3}+(?:[:=\#]|is)?[ \t]{0,3}+[\"']?(?P<ssn>\d{3}[- ]?\d{2}[- ]?\d{4})(?![0-9-])"
)


def _check_ssn_keyword(m: re.Match[str], _text: str) -> Match | None:
    digits = _digits(m.group("ssn"))
    if not ssn_digits_are_valid(digits):
        return None
    confidence = 0.5 if digits in EXAMPLE_SSNS else 1.0
    return _match(
        PhiKind.SSN,
        "ssn.keyword",
        m.start("ssn"),
        m.end("ssn"),
        digits,
        P_PHI_KEYWORD,
        confidence=confidence,
    )


SSN_KEYWORD_RULE: Final = TextRule(
    name="ssn.keyword",
    kind=PhiKind.SSN,
    pattern=SSN_KEYWORD_RE,
    check=_check_ssn_keyword,
    triggers=(
        *(f"ssn{f}" for f in _FOLLOWERS),
        "social_security",
        "social-security",
        *(f"{w}{f}" for w in ("social security", "socialsecurity") for f in _FOLLOWERS),
    ),
    examples=("SSN 536228714 on file", "social security number is 536 22 8714"),
)

_PHONE_WORDS: Final = ("phone", "mobile", *(f"fax{f}" for f in _FOLLOWERS))
PHONE_RE: Final = re.compile(
    r"(?<![\w+.-])(?:"
    r"(?:\+?1[ .-]?)?\((?P<a1>\d{3})\)[ ]?(?P<b1>\d{3})[ .-](?P<c1>\d{4})"
    r"|(?:\+?1[ .-])?(?P<a2>\d{3})(?P<s2>[.-])(?P<b2>\d{3})(?P=s2)(?P<c2>\d{4})"
    r"|\+1[ ]?(?P<a3>\d{3})[ ]?(?P<b3>\d{3})[ ]?(?P<c3>\d{4})"
    r")(?![\w-]|\.\d)"
)


def _check_phone(m: re.Match[str], _text: str) -> Match | None:
    for a, b, c in (("a1", "b1", "c1"), ("a2", "b2", "c2"), ("a3", "b3", "c3")):
        if m.group(a) is not None:
            npa, nxx, line = m.group(a), m.group(b), m.group(c)
            break
    else:  # pragma: no cover - one branch always matched
        return None
    if not nanp_is_valid(npa, nxx):
        return None
    confidence = 0.5 if nanp_is_fictional(nxx, line) else 1.0
    return _match(
        PhiKind.PHONE,
        "phone.nanp",
        m.start(),
        m.end(),
        npa + nxx + line,
        P_PHI_SHAPE,
        confidence=confidence,
    )


PHONE_RULE: Final = TextRule(
    name="phone.nanp",
    kind=PhiKind.PHONE,
    pattern=PHONE_RE,
    check=_check_phone,
    triggers=(
        "000-000-0000",
        "000.000.0000",
        "(000)",
        "+00000000000",
        "+0 000",
        "+0-000",
        "+0.000",
        *_PHONE_WORDS,
    ),
    examples=(
        "call back at (617) 555-2368",
        "contact 617-555-2368 today",
        "sms +16175552368 sent",
        "phone: 617.555.2368",
        "+1 (617) 555-2368",
        "+1 617 555 2368",
    ),
)

PHONE_KEYWORD_RE: Final = re.compile(
    r"(?<![A-Za-z])(?P<kw>(?i:phone|tel|telephone|mobile|cell|fax))(?:[ _-]?(?i:no\.?|number|\#))?"
    r"[\"']?[ \t]{0,3}+[:=\#]?[ \t]{0,3}+[\"']?(?P<num>\+?[0-9][0-9 ().-]{8,16}+)"
)


def _check_phone_keyword(m: re.Match[str], _text: str) -> Match | None:
    num = m.group("num").rstrip(" ().-")
    digits = _digits(num)
    if not nanp_digits_are_valid(digits):
        return None
    safeguard = SafeHarbor.FAX if m.group("kw").lower() == "fax" else SafeHarbor.PHONE
    start = m.start("num")
    return _match(
        PhiKind.PHONE,
        "phone.keyword",
        start,
        start + len(num),
        digits[-10:],
        P_PHI_KEYWORD,
        safeguard=safeguard,
    )


PHONE_KEYWORD_RULE: Final = TextRule(
    name="phone.keyword",
    kind=PhiKind.PHONE,
    pattern=PHONE_KEYWORD_RE,
    check=_check_phone_keyword,
    triggers=_PHONE_WORDS,
    examples=("phone 6175552368", "Telephone: 617 555 2368", "fax=16175552368"),
)

EMAIL_RE: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])(?P<local>[A-Za-z0-9._%+-]{1,64}+)@"
    r"(?P<domain>[A-Za-z0-9-]{1,63}+(?:\.[A-Za-z0-9-]{1,63}+)++)"
)


def _check_email(m: re.Match[str], text: str) -> Match | None:
    local, domain = m.group("local"), m.group("domain")
    if local[0] == "." or local[-1] == "." or not email_domain_is_valid(domain):
        return None
    start = m.start()
    # `scheme://user:password@host` is a credential in a URL (url.userinfo), not an address.
    if (
        start > 0
        and text[start - 1] == ":"
        and not text[max(0, start - 7) : start].lower().endswith("mailto:")
    ):
        return None
    return _match(PhiKind.EMAIL, "email.address", start, m.end(), m.group().lower(), P_PHI_SHAPE)


EMAIL_RULE: Final = TextRule(
    name="email.address",
    kind=PhiKind.EMAIL,
    pattern=EMAIL_RE,
    check=_check_email,
    triggers=("@",),
    anchor="@",
    reach=64,  # the local part is at most 64 characters
    examples=("notify jane.doe+cds@mercy-health.org now", "mailto:John.Smith@Example.COM"),
)

MRN_RE: Final = re.compile(
    # The keyword ends a word: "mRNITsF…" in a base64 etag is no MRN, "MRN00482913" is.
    r"(?<![A-Za-z0-9])(?P<kw>(?i:mrn(?![A-Za-z])|mr[ ]?\#"
    r"|medical[ _-]record(?:[ _-](?:number|no\.?|num|\#))?))"
    r"[\"']?[ \t]{0,3}+[:=\#]?[ \t]{0,3}+[\"']?(?P<mrn>[A-Za-z0-9][A-Za-z0-9-]{2,24}+)"
)


def _check_mrn(m: re.Match[str], _text: str) -> Match | None:
    mrn = m.group("mrn")
    if not any(ch.isdigit() for ch in mrn):
        return None
    # Glued to its keyword, an MRN is digits ("MRN00482913"); "mrn9s1QPS5" is base64.
    if m.end("kw") == m.start("mrn") and m.group("kw")[-1].isalpha() and not mrn.isdigit():
        return None
    return _match(
        PhiKind.MRN, "mrn.keyword", m.start("mrn"), m.end("mrn"), mrn.upper(), P_PHI_KEYWORD
    )


MRN_RULE: Final = TextRule(
    name="mrn.keyword",
    kind=PhiKind.MRN,
    pattern=MRN_RE,
    check=_check_mrn,
    triggers=(
        "mrn",
        "mr#",
        "mr #",
        "medical record",
        "medical_record",
        "medical-record",
    ),
    examples=("MRN: 00482913 admitted", "medical record number 77-1234-5", "mr#A0042913"),
)

_Q = r"\\?\""
MRN_FHIR_TEXT_RE: Final = re.compile(
    rf"{_Q}code{_Q}\s{{0,3}}+:\s{{0,3}}+{_Q}MR{_Q}[^{{]{{0,300}}?{_Q}value{_Q}\s{{0,3}}+:\s{{0,3}}+{_Q}(?P<a>[^\"\\\n]{{1,64}}+)"
    rf"|{_Q}value{_Q}\s{{0,3}}+:\s{{0,3}}+{_Q}(?P<b>[^\"\\\n]{{1,64}}+){_Q}[^}}]{{0,300}}?{_Q}code{_Q}\s{{0,3}}+:\s{{0,3}}+{_Q}MR{_Q}"
)


def _check_mrn_fhir_text(m: re.Match[str], _text: str) -> Match | None:
    group = "a" if m.group("a") is not None else "b"
    value = m.group(group)
    if is_placeholder(value):
        return None
    return _match(PhiKind.MRN, "mrn.fhir_text", m.start(group), m.end(group), value, P_PHI_KEYWORD)


MRN_FHIR_TEXT_RULE: Final = TextRule(
    name="mrn.fhir_text",
    kind=PhiKind.MRN,
    pattern=MRN_FHIR_TEXT_RE,
    check=_check_mrn_fhir_text,
    triggers=('"mr"', '"mr\\"'),
    examples=(
        (
            'body={"identifier":[{"type":{"coding":[{"system":'
            '"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},'
            '"system":"urn:oid:1.2.36.146.595.217.0.1","value":"A12345"}]}'
        ),
        '{"value": "A12345", "type": {"coding": [{"code": "MR"}]}}',
    ),
)

MRN_SEARCH_RE: Final = re.compile(r"(?<=[?&])identifier=(?P<id>[^&\s#\"']{1,128}+)")


def _check_mrn_search(m: re.Match[str], _text: str) -> Match | None:
    value = m.group("id")
    if is_placeholder(value) or not any(ch.isdigit() for ch in value):
        return None
    return _match(
        PhiKind.MRN,
        "mrn.fhir_search",
        m.start("id"),
        m.end("id"),
        value,
        P_PHI_KEYWORD,
        confidence=0.8,
    )


MRN_SEARCH_RULE: Final = TextRule(
    name="mrn.fhir_search",
    kind=PhiKind.MRN,
    pattern=MRN_SEARCH_RE,
    check=_check_mrn_search,
    triggers=("?identifier=", "&identifier="),
    examples=("GET /fhir/Patient?identifier=urn:oid:1.2.36|A12345&_count=1",),
)

_DATE = (
    r"\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})"
    rf"|(?i:{MONTH_NAMES})\.?[ ]\d{{1,2}},?[ ]\d{{4}}|\d{{1,2}}[ ](?i:{MONTH_NAMES})\.?,?[ ]\d{{4}}"
)
DOB_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])(?i:dob|d\.o\.b\.?|date[ _-]of[ _-]birth|birth[ _-]?date|born(?:[ _-]on)?)"
    rf"[\"']?[ \t]{{0,3}}+[:=]?[ \t]{{0,3}}+[\"']?(?P<date>{_DATE})(?![0-9])"
)


def _check_dob(m: re.Match[str], _text: str) -> Match | None:
    value = m.group("date")
    if not parse_birth_date(value):
        return None
    return _match(PhiKind.DOB, "dob.keyword", m.start("date"), m.end("date"), value, P_PHI_KEYWORD)


DOB_RULE: Final = TextRule(
    name="dob.keyword",
    kind=PhiKind.DOB,
    pattern=DOB_RE,
    check=_check_dob,
    triggers=(
        *(f"dob{f}" for f in _FOLLOWERS),
        *(f"d.o.b{f}" for f in _FOLLOWERS),
        "birth",
        "born",
    ),
    examples=(
        "DOB: 03/07/1954",
        '"birthDate": "1954-03-07"',
        "born March 7, 1954",
        "date of birth 7 Mar 1954",
    ),
)

NAME_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])(?i:patient(?:[ _-]?(?:full[ _-]?)?name)?"
    r"|(?:first|last|given|family|full|middle|maiden)[ _-]?name|name[ _-]of[ _-]patient)"
    r"[\"']?[ \t]{0,3}+[:=][ \t]{0,3}+[\"']?"
    r"(?P<name>[A-Z][a-zA-Z'-]{1,30}+(?:,?[ ][A-Z][a-zA-Z'-]{0,30}+\.?){0,3}+)"
)


def _check_name(m: re.Match[str], text: str) -> Match | None:
    name = m.group("name").rstrip(".")
    if is_placeholder(name) or text[m.end("name") : m.end("name") + 1] == "/":
        return None
    start = m.start("name")
    return _match(
        PhiKind.PERSON_NAME, "person_name.keyword", start, start + len(name), name, P_PHI_WEAK
    )


NAME_RULE: Final = TextRule(
    name="person_name.keyword",
    kind=PhiKind.PERSON_NAME,
    pattern=NAME_RE,
    check=_check_name,
    triggers=tuple(
        f"{w}{s}" for w in ("name", "patient") for s in (":", "=", '"', "'", " :", " =", "\\")
    ),
    examples=("patient name: Maria Lopez", "Patient: Smith, John Q.", "first_name='Ana'"),
)

_STREET_SUFFIXES: Final = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Place|Pl|Terrace|Ter"
    "|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Plaza|Ridge|Way"
)
STREET_RE: Final = re.compile(
    r"(?<![A-Za-z0-9.,/-])\d{1,6}(?:[ ](?:[NSEW]|North|South|East|West|[NS][EW])\.?)?"
    rf"(?:[ ][A-Z][a-z]{{1,20}}){{1,4}}[ ](?:{_STREET_SUFFIXES})\b\.?"
    r"(?:,?[ ](?:Apt|Suite|Ste|Unit|\#)\.?[ ]?[A-Za-z0-9-]{1,8}+)?"
)


def _check_street(m: re.Match[str], _text: str) -> Match | None:
    return _match(
        PhiKind.STREET_ADDRESS, "street_address.pattern", m.start(), m.end(), m.group(), P_PHI_WEAK
    )


# Triggers need an anchor byte (auditor.patterns.prefilter.ANCHOR_BYTES), so only suffixes
# holding one trigger the rule: Avenue, Boulevard, Drive, Lane, Parkway, Highway, Square,
# Plaza, Way. Street, Road, Court, Place, Circle, Terrace, Trail and Ridge are matched
# when something else in the text triggers the rule; their letters are all too common
# in log text to scan for cheaply.
_STREET_TRIGGERS: Final = tuple(
    f" {suffix}{follower}"
    for suffix in _STREET_SUFFIXES.lower().split("|")
    if ANCHOR_BYTES.intersection(suffix.encode())
    for follower in (
        ("",) if ANCHOR_BYTES.intersection(suffix[:-1].encode()) else (" ", ".", ",", "\n")
    )
)
STREET_RULE: Final = TextRule(
    name="street_address.pattern",
    kind=PhiKind.STREET_ADDRESS,
    pattern=STREET_RE,
    check=_check_street,
    triggers=_STREET_TRIGGERS,
    examples=(
        "ship to 1428 Elm Avenue, Springfield",
        "lives at 77 N Harbor Blvd. Apt 4",
        "addr 9 Oak Lane",
    ),
)

PATIENT_REF_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])(?P<type>Patient|RelatedPerson|Person)/(?P<id>[A-Za-z0-9.-]{1,64}+)"
)


def _check_patient_ref(m: re.Match[str], _text: str) -> Match | None:
    value = m.group("id").rstrip(".")
    if not value or not value[0].isalnum():
        return None
    start = m.start("id")
    facts: dict[str, Fact] = {"resource_type": m.group("type")}
    return _match(
        PhiKind.PATIENT_ID,
        "patient_id.reference",
        start,
        start + len(value),
        value,
        P_PHI_KEYWORD,
        facts=facts,
    )


PATIENT_REF_RULE: Final = TextRule(
    name="patient_id.reference",
    kind=PhiKind.PATIENT_ID,
    pattern=PATIENT_REF_RE,
    check=_check_patient_ref,
    triggers=("patient/", "person/"),
    examples=(
        "GET https://fhir.example.org/r4/Patient/smart-1288992/$everything",
        "subject=Patient/42.",
    ),
)

BUILTIN_RULES: Final[tuple[TextRule, ...]] = (
    JWT_RULE,
    JWT_BASE64_RULE,
    PEM_RULE,
    JWK_RULE,
    BEARER_RULE,
    BASIC_RULE,
    USERINFO_RULE,
    CODE_PARAM_RULE,
    SSN_RULE,
    SSN_KEYWORD_RULE,
    PHONE_RULE,
    PHONE_KEYWORD_RULE,
    EMAIL_RULE,
    MRN_RULE,
    MRN_FHIR_TEXT_RULE,
    MRN_SEARCH_RULE,
    DOB_RULE,
    NAME_RULE,
    STREET_RULE,
    PATIENT_REF_RULE,
)
"""Every text rule except the keyed one (built from the key table, `auditor.patterns.keyed`)."""
