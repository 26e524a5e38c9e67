"""`Redactor`: the structlog processor that keeps tokens and PHI out of log events.

Place it after ``format_exc_info`` (so tracebacks are text it can scan) and before the
renderer::

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        Redactor(RedactorConfig()),
        structlog.processors.JSONRenderer(),
    ])

If an event still holds ``exc_info`` (the Redactor placed before ``format_exc_info``), the
Redactor formats the exception itself so the traceback text is redacted too.

The common path is one loop over the event: keys are classified once and remembered, a
string already found clean (event names, routes, issuers, SQL: most of what services log
repeats) is not looked at again, a new value of a harmless shape (a UUID, a digest, a
timestamp; `auditor.patterns.lookalikes`) is recognised whole, and what is left is joined
and run through the pattern library's prefilter. A clean event is returned untouched (the
same object). Only events that trip the prefilter, or hold a sensitive key, a nested
object or an unusual value, take the slower paths.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any, Final, cast
from urllib.parse import quote

from structlog.processors import format_exc_info

from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter, default_fingerprinter
from auditor.patterns.keys import KeyRule, normalize_key
from auditor.patterns.library import Group, PatternLibrary, resolve, splice
from auditor.patterns.lookalikes import SKELETON
from auditor.patterns.matches import Fact, FieldMatch, JsonPath, Kind, json_path
from auditor.patterns.memory import CleanMemory
from auditor.patterns.prefilter import utf8
from auditor.patterns.walk import LimitReason, Walker, judge_text
from auditor.redaction.config import RedactorConfig
from auditor.redaction.gathering import (
    ALLOW,
    KEY_CACHE_LIMIT,
    NESTED,
    PLAIN,
    SCALARS,
    SHAPED,
    STRUCTLOG_META,
    UNKNOWN,
    Gatherer,
)
from auditor.vocabulary import TokenKind

_FAILED_KEEP: Final = ("timestamp", "level", "logger")
_MAX_KEPT_CHARS: Final = 64
_FACT_SAFE_CHARS: Final = ":/?#@!$&'()*+,;=~.-_"
_MAX_FACT_CHARS: Final = 128
_QUOTED_AS_IS: Final = re.compile(r"[A-Za-z0-9_.~" + re.escape(_FACT_SAFE_CHARS) + "]*").fullmatch
"""Text that ``quote(text, safe=_FACT_SAFE_CHARS)`` returns unchanged (its own safe
characters and those it never quotes), so the call can be skipped."""

EventDict = MutableMapping[str, Any]


class Redaction:
    """What one redaction pass replaced: JSON path and rule of each, never a value."""

    __slots__ = ("count", "records")

    def __init__(self) -> None:
        self.records: list[tuple[JsonPath, str]] = []
        self.count = 0

    def add(self, path: JsonPath, rule: str) -> None:
        """Note that the value at ``path`` was replaced by ``rule``."""
        self.records.append((path, rule))
        self.count += 1


class _Marking:
    """The walk visitor of the Redactor: replaces with markers and notes what it did."""

    __slots__ = ("_redactor", "done")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self.done = Redaction()

    def field(self, match: FieldMatch, original: object) -> object:
        if not match.redact:
            return original
        self.done.add(match.path, match.rule)
        return self._redactor.marker(match.kind, match.value, match.facts)

    def report(self, match: FieldMatch) -> None:
        """Report-only matches (a person resource) change nothing."""

    def text(self, path: JsonPath, text: str, groups: list[Group]) -> object:
        def replace(group: Group) -> str:
            for member in group.members:
                self.done.add(path, member.rule)
            best = group.best
            return self._redactor.marker(best.kind, best.value, best.facts)

        return splice(text, groups, replace)

    def limit(self, path: JsonPath, reason: LimitReason, original: object) -> object:
        self.done.add(path, f"limit.{reason}")
        if reason == "oversized" and isinstance(original, str | bytes):
            return f"[REDACTED:oversized chars={len(original)}]"
        return f"[REDACTED:{reason}]"


class Redactor:
    """A structlog processor that replaces tokens and PHI with markers.

    A marker names the kind and a short keyed fingerprint, never the value:
    ``[REDACTED:jwt fp=3fa9c1d2 iss=https://ehr.example jti=… kid=… alg=ES384 exp=…]``.
    What was replaced is listed under ``config.record_key`` (JSON path and rule).

    It never raises: if redaction fails, the event is replaced by a minimal one that
    says so (fail closed), and `failures` counts it.

    Args:
        config: What to redact (default: everything the pattern library knows).

    Raises:
        ConfigurationError: The configuration is invalid.
    """

    __slots__ = (
        "_allow",
        "_config",
        "_digits",
        "_facts",
        "_fingerprint",
        "_gathering",
        "_jwt_facts",
        "_lib",
        "_max_chars",
        "_max_depth",
        "_max_items",
        "_memory",
        "_prefilter",
        "_prefixes",
        "_walker_keys",
        "failures",
    )

    def __init__(self, config: RedactorConfig | None = None) -> None:
        config = config or RedactorConfig()
        config.validate()
        self._config = config
        try:
            self._lib = PatternLibrary(
                keys=config.key_table(), kinds=config.kinds, extra_rules=config.extra_rules
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid redaction rules: {exc}") from None
        self._fingerprint: Fingerprinter = config.fingerprinter or default_fingerprinter()
        self._digits = config.fingerprint_digits
        self._jwt_facts = config.jwt_facts
        self._allow = frozenset(normalize_key(k) for k in config.allow_keys)
        self._max_chars = config.max_value_chars
        self._max_depth = config.max_depth
        self._max_items = config.max_items
        self._walker_keys: dict[str, object] = {}
        self._prefixes: dict[Kind, str] = {}
        """The start of a marker, by kind."""
        self._facts: dict[str, str | None] = {}
        """JWT claim values already judged safe to show (issuers and key ids repeat)."""
        self._prefilter = self._lib.prefilter
        self._memory = CleanMemory(
            self._lib.prefilter, entries=config.memory_entries, max_chars=self._max_chars
        )
        """Strings this Redactor's rules found clean: its own, as another rule set may
        judge them otherwise."""
        self._gathering = Gatherer(
            self._lib,
            self._memory,
            allow=self._allow,
            max_chars=self._max_chars,
            max_depth=self._max_depth,
            max_items=self._max_items,
        )
        self.failures = 0
        """How many events redaction failed on (each was replaced by a minimal event)."""

    @property
    def config(self) -> RedactorConfig:
        """The configuration."""
        return self._config

    @property
    def library(self) -> PatternLibrary:
        """The compiled pattern library."""
        return self._lib

    @property
    def memory(self) -> CleanMemory:
        """Strings this Redactor's rules found clean, and its look-alike shapes."""
        return self._memory

    # --- structlog ------------------------------------------------------------------------

    def __call__(self, logger: object, method_name: str, event_dict: EventDict) -> EventDict:
        """Redact one event; structlog's processor signature."""
        try:
            if type(event_dict) is dict:  # what structlog passes: its items read natively
                return self._inline(cast("dict[str, object]", event_dict), logger, method_name)
            return self.process(event_dict, logger, method_name)[0]
        except Exception as exc:  # noqa: BLE001 - the processor never raises (fail closed)
            return self._failed(event_dict, exc)

    def _inline(self, event: dict[str, object], logger: object, method_name: str) -> EventDict:  # noqa: C901, PLR0912 - the hot path, inline on purpose
        """The common case, in one loop: known plain keys, strings and scalars only.

        Every string remembered clean, allowlisted or a look-alike passes (the look-alike
        test only under a `SHAPED` key: one whose new values were all look-alikes so far);
        what is left (usually nothing) is judged by `_judge`. A key not known plain or allowlisted
        sends the event to `process`, a nested value the gatherer cannot flatten to the
        walk (where `process` would send it too).
        """
        gathering = self._gathering
        states = gathering.key_state
        memory = self._memory
        clean, shapes, widest = memory.strings, memory.skeletons, memory.shape_chars
        novel: list[str] | None = None
        owners: list[object]
        for key, value in event.items():
            state = states.get(key, UNKNOWN)
            if state > SHAPED:  # not plain (the states are ordered so)
                if state == ALLOW:
                    continue
                return self.process(event, logger, method_name)[0]  # new, or needs attention
            if type(value) is str:
                if value in clean:
                    continue
                if state == SHAPED:
                    # Only keys whose new values were look-alikes so far pay for the test:
                    # on other values it is wasted work, and the prefilter clears them too.
                    if len(value) <= widest and utf8(value).translate(SKELETON) in shapes:
                        continue
                    states[key] = PLAIN
                if novel is None:
                    novel, owners = [value], [key]
                else:
                    novel.append(value)
                    owners.append(key)
                continue
            if type(value) in SCALARS:
                continue
            if (type(value) is list or type(value) is tuple) and gathering.known_strings(value):
                continue
            if novel is None:
                novel, owners = [], []
            if not gathering.collect_novel(value, novel, owners):
                return self._redact_event(logger, method_name, event)[0]
        if not novel:
            return event
        return self._judge(event, novel, owners, logger, method_name)[0]

    def process(
        self, event_dict: EventDict, logger: object = None, method_name: str = "info"
    ) -> tuple[EventDict, Redaction | None]:
        """Redact one event and say what was replaced.

        ``None`` means the event is clean and returned as the same object. A flat event
        (strings and scalars) is redacted in place; one with nested or unusual values is
        rebuilt. Unlike calling the Redactor, this may raise.
        """
        keyed: list[tuple[str, KeyRule]] = []
        gathered = self._gathering.gather(event_dict, keyed)
        if gathered is None:
            return self._redact_event(logger, method_name, event_dict)
        memory = self._memory
        strings: list[str] = []
        owners: list[object] = []
        for text, owner in zip(*gathered, strict=True):
            if text not in memory:
                strings.append(text)
                owners.append(owner)
        if keyed:
            return self._redact_keyed(event_dict, strings, owners, keyed, logger, method_name)
        if not strings:
            return event_dict, None
        return self._judge(event_dict, strings, owners, logger, method_name)

    def _redact_keyed(  # noqa: PLR0917 - the state of `process`, passed on
        self,
        event_dict: EventDict,
        strings: list[str],
        owners: list[object],
        keyed: list[tuple[str, KeyRule]],
        logger: object,
        method_name: str,
    ) -> tuple[EventDict, Redaction | None]:
        """A flat event with strings under sensitive top-level keys, redacted in place.

        Each such string is judged as the walk judges it (`judge_text`): replaced whole
        when it counts, else scanned as text with the event's other new strings. What was
        replaced is noted in the event's key order, as the walk notes it.
        """
        memory = self._memory
        fields: dict[str, tuple[KeyRule, tuple[Any, ...]]] = {}
        for key, rule in keyed:
            text = event_dict[key]
            judged = judge_text(self._lib, rule, text)
            if judged is not None:
                fields[key] = (rule, judged)
            elif text not in memory:
                strings.append(text)
                owners.append(key)
        texts = self._scan_top(strings, owners) if strings else {}
        if texts is None:
            return self._redact_event(logger, method_name, event_dict)
        if not fields and not texts:
            return event_dict, None
        visitor = _Marking(self)
        for key in list(event_dict):
            if key in fields:
                rule, (kind, normal, facts) = fields[key]
                match = FieldMatch(
                    (key,), kind, rule.rule, normal, facts=facts, safeguard=rule.safeguard
                )
                event_dict[key] = visitor.field(match, event_dict[key])
            elif key in texts:
                text, groups = texts[key]
                event_dict[key] = visitor.text((key,), text, groups)
        if self._config.record_key is not None:
            event_dict[self._config.record_key] = self._records(visitor.done)
        return event_dict, visitor.done

    def _scan_top(
        self, strings: list[str], owners: list[object]
    ) -> dict[object, tuple[str, list[Group]]] | None:
        """What the rules find in new strings, by the top-level key that owns each.

        Strings found clean are remembered. None when only the walk can redact them: one
        is too long, or one with a trigger sits in a nested value.
        """
        joined = "\n".join(strings)
        if len(joined) > self._max_chars and max(map(len, strings)) > self._max_chars:
            return None
        found = self._prefilter.search(strings, joined)
        if any(owners[index] is NESTED for index in found):
            return None
        memory = self._memory
        memory.remember([text for index, text in enumerate(strings) if index not in found])
        rules = self._lib.rules
        texts: dict[object, tuple[str, list[Group]]] = {}
        for index, names in found.items():
            text = strings[index]
            matches = [m for name in names for m in rules[name].find(text)]
            if matches:
                texts[owners[index]] = (text, resolve(matches))
            else:
                memory.remember((text,))
        return texts

    def _judge(
        self,
        event_dict: EventDict,
        strings: list[str],
        owners: list[object],
        logger: object,
        method_name: str,
    ) -> tuple[EventDict, Redaction | None]:
        """Scan an event's new strings (each owned by its top-level key, or `NESTED`)."""
        joined = "\n".join(strings)
        if len(joined) > self._max_chars and max(map(len, strings)) > self._max_chars:
            return self._redact_event(logger, method_name, event_dict)
        found = self._prefilter.search(strings, joined)
        if not found:
            memory = self._memory
            forgotten = memory.forgotten
            memory.remember(strings, joined)
            if memory.forgotten != forgotten:
                self._gathering.reshape()
            return event_dict, None
        if any(owners[index] is NESTED for index in found):
            return self._redact_event(logger, method_name, event_dict)
        return self._redact_flat(event_dict, strings, owners, found)

    def _redact_flat(
        self,
        event_dict: EventDict,
        strings: list[str],
        owners: list[object],
        found: dict[int, set[str]],
    ) -> tuple[EventDict, Redaction | None]:
        """Redact the top-level strings the prefilter pointed at, in place."""
        visitor = _Marking(self)
        rules = self._lib.rules
        memory = self._memory
        memory.remember([text for index, text in enumerate(strings) if index not in found])
        for index, names in found.items():
            text = strings[index]
            matches = [m for name in names for m in rules[name].find(text)]
            if not matches:
                memory.remember((text,))
            else:
                key = cast("str", owners[index])  # top-level strings are owned by their key
                event_dict[key] = visitor.text((key,), text, resolve(matches))
        done = visitor.done
        if not done.records:
            return event_dict, None
        if self._config.record_key is not None:
            event_dict[self._config.record_key] = self._records(done)
        return event_dict, done

    def _redact_event(
        self, logger: object, method_name: str, event_dict: EventDict
    ) -> tuple[EventDict, Redaction]:
        if event_dict.get("exc_info"):
            event_dict = format_exc_info(logger, method_name, event_dict)
        meta = {key: event_dict.pop(key) for key in STRUCTLOG_META if key in event_dict}
        new, done = self.redact(event_dict)
        out: EventDict = (
            new if type(new) is dict or isinstance(new, MutableMapping) else dict(event_dict)
        )
        if done.records and self._config.record_key is not None:
            out[self._config.record_key] = self._records(done)
        out.update(meta)
        return out, done

    def _records(self, done: Redaction) -> list[dict[str, object]]:
        limit = self._config.max_records
        records: list[dict[str, object]] = [
            {"path": json_path(path), "rule": rule} for path, rule in done.records[:limit]
        ]
        if done.count > limit:
            records.append({"rule": "more", "count": done.count - limit})
        return records

    def _failed(self, event_dict: EventDict, exc: Exception) -> EventDict:
        self.failures += 1
        minimal: dict[str, Any] = {
            "event": "redaction failed",
            "redaction_error": type(exc).__name__,
        }
        try:
            for key in _FAILED_KEEP:
                value = event_dict.get(key)
                if (
                    isinstance(value, str)
                    and len(value) <= _MAX_KEPT_CHARS
                    and normalize_key(key) in self._allow
                ):
                    minimal[key] = value
            for key in STRUCTLOG_META:
                if key in event_dict:
                    minimal[key] = event_dict[key]
        except Exception:  # noqa: BLE001, S110 - an event too broken to read keeps nothing
            pass
        return minimal

    # --- values and text ------------------------------------------------------------------

    def redact(self, value: object) -> tuple[object, Redaction]:
        """Redact any value and say what was replaced.

        Dicts, lists, tuples, sets, bytes, pydantic models, dataclasses and strings are
        walked; the value comes back as the same object when nothing was sensitive.

        Unlike ``__call__`` this may raise on a value that cannot be walked (a broken
        ``__eq__``, a model whose dump fails); callers that must not raise catch it.
        """
        visitor = _Marking(self)
        walker = Walker(
            self._lib,
            visitor,
            allow=self._allow,
            max_depth=self._max_depth,
            max_string=self._max_chars,
            max_items=self._max_items,
            key_cache=self._walker_keys,
            batch=False,
            memory=self._memory,
        )
        new = walker.walk(value)
        return new, visitor.done

    def redact_text(self, text: str) -> str:
        """Redact one string (a log message, a traceback); the same object if clean."""
        return self.redact_line(text)[0]

    def redact_line(self, text: str) -> tuple[str, Redaction]:
        """Redact one string and say what was replaced (paths are ``$``)."""
        visitor = _Marking(self)
        if len(text) > self._max_chars:
            return str(visitor.limit((), "oversized", text)), visitor.done
        if not self._lib.prefilter.hits(text):
            return text, visitor.done
        return str(visitor.text((), text, self._lib.groups(text))), visitor.done

    def marker(self, kind: Kind, value: str, facts: Any = None) -> str:
        """The replacement for one value: kind, short keyed fingerprint, safe JWT facts."""
        prefix = self._prefixes.get(kind)
        if prefix is None:
            prefix = self._prefixes[kind] = f"[REDACTED:{kind.value} fp="
        fp = self._fingerprint.short(value, self._digits)
        if kind is not TokenKind.JWT or not facts:
            return f"{prefix}{fp}]"
        parts = [prefix, fp]
        known = self._facts
        for name in self._jwt_facts:
            fact = facts.get(name)
            if fact is None:
                continue
            kind_of = type(fact)
            if kind_of is str:
                # Issuers, key ids and algorithms repeat: one lookup for a str seen before.
                shown = known.get(fact, self)
                if shown is self:
                    shown = self._fact_text(fact)
            elif kind_of is int:
                shown = str(fact)  # exp, as `_fact_text` shows it
            else:
                shown = self._fact_text(fact)
            if shown is not None:
                parts.append(f" {name}={shown}")
        parts.append("]")
        return "".join(parts)

    def _fact_text(self, fact: Fact | None) -> str | None:
        if fact is None or isinstance(fact, bool | tuple):
            return None
        if isinstance(fact, int | float):
            return str(fact)
        cached = self._facts.get(fact, self)
        if cached is not self:
            return cached  # type: ignore[return-value]
        # An attacker controls a token's claims: a claim must not smuggle a secret or
        # break the marker. Short, percent-encoded, and clean by our own rules.
        shown = None
        if len(fact) <= _MAX_FACT_CHARS and (fact in self._memory or not self._lib.contains(fact)):
            shown = fact if _QUOTED_AS_IS(fact) else quote(fact, safe=_FACT_SAFE_CHARS)
        if len(self._facts) >= KEY_CACHE_LIMIT:
            self._facts.clear()
        self._facts[fact] = shown
        return shown
