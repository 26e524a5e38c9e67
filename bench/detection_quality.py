"""Benchmark: recall and precision of ``leaked_token`` and ``phi_in_logs``, per kind.

Generates a labelled corpus of CDS Hooks service logs (``bench/scan_corpus.py``: structlog
JSON and text lines, Faker identities, JWTs minted by PyJWT with RS256/ES256/ES384, real
JWEs, opaque tokens, PEM keys, private JWKs, look-alikes in the clean lines), runs the
detectors over every line as ``auditor scan`` does, and scores each kind per line: a line
labelled with a kind counts as found when a finding of that kind is reported on it; a
finding of a kind on a line not labelled with it is a false positive.

In the same run, on the same random sample of lines, it scores:

- Yelp's detect-secrets 1.5 (file mode, default plugins and filters) on the token kinds.
  It does not name opaque tokens, so a labelled line counts as found when detect-secrets
  reports anything on it (generous to it); precision per kind is given where one of its
  types maps to a kind (JSON Web Token, Basic Auth Credentials, Private Key, Secret
  Keyword -> client_secret);
- Microsoft Presidio's pattern recognizers (e-mail, phone, US SSN, date) on the PHI
  kinds, when ``presidio-analyzer`` is installed (``pip install -e '.[bench]'``). They are
  called directly: no NLP model is loaded (none can be downloaded here), so Presidio has
  no person names and no MRNs, and its e-mail recognizer is given tldextract's bundled
  public suffix list so it never fetches one. Presidio is scored strictly (its entity
  type must match the kind).

Also checks that no finding, in any field, holds a planted raw value. Targets: every token
kind recall and precision >= 99.5%; SSN, e-mail, phone, MRN, DOB recall >= 98% and
precision >= 97%; person names in FHIR resources recall >= 99% (in free text: measured).

    .venv/bin/python bench/detection_quality.py [--lines 200000] [--planted-share 0.06]
        [--sample 5000] [--presidio-sample 2000] [--seed 2026]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from scan_corpus import KINDS, PHI_KINDS, TOKEN_KINDS, LabelledCorpus, Line

from auditor.fingerprints import Fingerprinter
from auditor.protocols import ScanContext
from detectors import ContentConfig, ContentScanner
from detectors.content import parse_line
from pipelines.scan.records import record_time

TOKEN_TARGET = (0.995, 0.995)
PHI_TARGETS = dict.fromkeys(("ssn", "email", "phone", "mrn", "dob"), (0.98, 0.97))
NAME_IN_FHIR_TARGET = 0.99

DETECT_SECRETS_TYPES = {
    "JSON Web Token": "jwt",
    "Basic Auth Credentials": "basic_auth",
    "Private Key": "private_key",
    "Secret Keyword": "client_secret",
}
PRESIDIO_TYPES = {
    "US_SSN": "ssn",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "DATE_TIME": "dob",
}
ANY_TOKEN = "any token"
ANY_PHI = "any PHI"

Found = list[set[str]]


def ours(lines: Sequence[Line]) -> tuple[Found, list[str], float]:
    """Kinds our detectors report per line, planted values that leaked, CPU seconds."""
    scanner = ContentScanner(ContentConfig(fingerprinter=Fingerprinter(os.urandom(32))))
    default_time = datetime.now(UTC)
    found: Found = []
    leaks: list[str] = []
    started = time.thread_time()
    for number, line in enumerate(lines, 1):
        content = parse_line(line.text)
        gathered = scanner.gather(content)
        if gathered is None:
            found.append(set())
            continue
        at = record_time(content) or default_time
        outcome = scanner.outcome(gathered, ScanContext(origin=f"corpus:{number}", observed_at=at))
        found.append({f.kind for f in outcome.findings})
        for finding in outcome.findings:
            dumped = finding.model_dump_json(exclude={"finding_id", "fingerprint"})
            leaks.extend(v for v in line.values if len(v) >= 8 and v in dumped)
    return found, leaks, time.thread_time() - started


def detect_secrets_found(lines: Sequence[Line]) -> tuple[Found, float]:
    """What detect-secrets reports per line (file mode): mapped kinds, '*' for others."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp, "service.log"))
        with Path(path).open("w", encoding="utf-8") as out:
            out.writelines(line.text.replace("\n", " ") + "\n" for line in lines)
        started = time.thread_time()
        with default_settings():
            collection = SecretsCollection()
            collection.scan_file(path)
        elapsed = time.thread_time() - started
        found: Found = [set() for _ in lines]
        for _, secret in collection:
            found[secret.line_number - 1].add(DETECT_SECRETS_TYPES.get(secret.type, "*"))
    return found, elapsed


def presidio_recognizers() -> list[object] | None:
    """Presidio's pattern recognizers for the PHI kinds, offline; None when not installed."""
    try:
        import tldextract
        from presidio_analyzer.predefined_recognizers import (
            DateRecognizer,
            EmailRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )
        from presidio_analyzer.predefined_recognizers.generic import email_recognizer
    except ImportError:
        return None
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract = types.SimpleNamespace(extract=offline)  # type: ignore[attr-defined]
    return [EmailRecognizer(), PhoneRecognizer(), UsSsnRecognizer(), DateRecognizer()]


def presidio_found(lines: Sequence[Line], recognizers: list[object]) -> tuple[Found, float]:
    """What Presidio's pattern recognizers report per line (mapped kinds)."""
    found: Found = []
    started = time.thread_time()
    for line in lines:
        kinds: set[str] = set()
        for recognizer in recognizers:
            entities = recognizer.supported_entities  # type: ignore[attr-defined]
            for result in recognizer.analyze(line.text, entities, None):  # type: ignore[attr-defined]
                if result.score > 0:
                    kinds.add(PRESIDIO_TYPES.get(result.entity_type, "*"))
        found.append(kinds)
    return found, time.thread_time() - started


def score(
    lines: Sequence[Line], found: Found, kinds: Sequence[str], *, generous: bool = False
) -> dict[str, tuple[int, int, int]]:
    """(true positives, false positives, false negatives) per kind and for the group.

    With ``generous``, a labelled line counts as found when anything was reported on it.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    group = ANY_TOKEN if kinds[0] in TOKEN_KINDS else ANY_PHI
    for line, got in zip(lines, found, strict=True):
        for kind in kinds:
            labelled = kind in line.labels
            hit = bool(got) if generous and labelled else kind in got
            if labelled and hit:
                counts[kind][0] += 1
            elif hit:
                counts[kind][1] += 1
            elif labelled:
                counts[kind][2] += 1
        labelled_any = any(k in line.labels for k in kinds)
        reported_any = bool(got & set(kinds)) or (generous and "*" in got)
        if labelled_any and reported_any:
            counts[group][0] += 1
        elif reported_any:
            counts[group][1] += 1
        elif labelled_any:
            counts[group][2] += 1
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}


def _pct(num: int, den: int) -> str:
    return f"{100 * num / den:6.2f}%" if den else "     —"


def recall(c: tuple[int, int, int]) -> float:
    """Tp / (tp + fn)."""
    return c[0] / (c[0] + c[2]) if c[0] + c[2] else 1.0


def precision(c: tuple[int, int, int]) -> float:
    """Tp / (tp + fp)."""
    return c[0] / (c[0] + c[1]) if c[0] + c[1] else 1.0


def by_form(lines: Sequence[Line], found: Found, kind: str) -> dict[str, tuple[int, int]]:
    """Recall of ``kind`` per form it was written in: (found, labelled)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line, got in zip(lines, found, strict=True):
        for form in line.labels.get(kind, ()):
            out[form][1] += 1
            out[form][0] += kind in got
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def table(
    title: str,
    kinds: Sequence[str],
    columns: list[tuple[str, dict[str, tuple[int, int, int]], Callable[[str], bool]]],
) -> None:
    """Print recall and precision per kind for each tool."""
    print(f"\n{title}")
    head = "  ".join(f"{name:>22}" for name, _, _ in columns)
    print(f"{'kind':<16}{head}")
    print(f"{'':<16}" + "  ".join(f"{'recall':>10} {'precision':>11}" for _ in columns))
    for kind in [*kinds, ANY_TOKEN if kinds[0] in TOKEN_KINDS else ANY_PHI]:
        cells = []
        for _, counts, has_precision in columns:
            c = counts.get(kind, (0, 0, 0))
            rec = _pct(c[0], c[0] + c[2])
            prec = _pct(c[0], c[0] + c[1]) if has_precision(kind) else "     —"
            cells.append(f"{rec:>10} {prec:>11}")
        print(f"{kind:<16}" + "  ".join(cells))


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 - a report, top to bottom
    """Build the corpus, score every tool, print the tables and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--planted-share", type=float, default=0.06)
    parser.add_argument("--sample", type=int, default=5000, help="lines for detect-secrets")
    parser.add_argument("--presidio-sample", type=int, default=2000, help="lines for Presidio")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    lines = LabelledCorpus(args.seed).build(args.lines, args.planted_share)
    planted = Counter(k for line in lines for k in line.labels)
    print(
        f"corpus: {len(lines):,} lines ({sum(bool(x.labels) for x in lines):,} with planted "
        f"values), built in {time.perf_counter() - started:.1f}s; labelled lines per kind: "
        + ", ".join(f"{k} {planted[k]}" for k in KINDS)
    )

    found, leaks, ours_cpu = ours(lines)
    ours_tokens = score(lines, found, TOKEN_KINDS)
    ours_phi = score(lines, found, PHI_KINDS)
    print(
        f"ours: {len(lines):,} lines in {ours_cpu:.1f}s CPU, leak checks included "
        "(speed: bench/scan_speed.py)"
    )

    rng = random.Random(args.seed)
    sample_idx = sorted(rng.sample(range(len(lines)), min(args.sample, len(lines))))
    sample = [lines[i] for i in sample_idx]
    ours_sample = [found[i] for i in sample_idx]
    ds_found, ds_cpu = detect_secrets_found(sample)
    print(f"detect-secrets: {len(sample):,} sampled lines in {ds_cpu:.1f}s CPU")

    table(
        f"Token kinds — all {len(lines):,} lines (ours), and a sample of {len(sample):,} (both):",
        TOKEN_KINDS,
        [
            ("ours (all lines)", ours_tokens, lambda _: True),
            ("ours (sample)", score(sample, ours_sample, TOKEN_KINDS), lambda _: True),
            (
                "detect-secrets",
                score(sample, ds_found, TOKEN_KINDS, generous=True),
                lambda k: k in DETECT_SECRETS_TYPES.values() or k == ANY_TOKEN,
            ),
        ],
    )

    recognizers = presidio_recognizers()
    columns = [
        ("ours (all lines)", ours_phi, lambda _: True),
    ]
    if recognizers is not None:
        p_idx = sample_idx[: args.presidio_sample]
        p_lines = [lines[i] for i in p_idx]
        p_found, p_cpu = presidio_found(p_lines, recognizers)
        print(f"presidio (pattern recognizers): {len(p_lines):,} sampled lines in {p_cpu:.1f}s CPU")
        columns += [
            (
                "ours (Presidio sample)",
                score(p_lines, [found[i] for i in p_idx], PHI_KINDS),
                lambda _: True,
            ),
            (
                "Presidio patterns",
                score(p_lines, p_found, PHI_KINDS),
                lambda k: k in PRESIDIO_TYPES.values() or k == ANY_PHI,
            ),
        ]
    else:
        print("presidio: not installed (pip install -e '.[bench]'); PHI compared with nothing")
    table("PHI kinds:", PHI_KINDS, columns)

    print("\nRecall per form (ours, all lines):")
    for kind in KINDS:
        forms = by_form(lines, found, kind)
        print(
            f"  {kind:<15} "
            + ", ".join(f"{f} {_pct(a, b).strip()} ({b})" for f, (a, b) in forms.items())
        )

    print(f"\nplanted values found in any field of a finding: {len(leaks)}")
    verdicts = []
    for kind in TOKEN_KINDS:
        c = ours_tokens[kind]
        ok = recall(c) >= TOKEN_TARGET[0] and precision(c) >= TOKEN_TARGET[1]
        verdicts.append((f"{kind} recall/precision >= 99.5%", ok))
    for kind, (r, p) in PHI_TARGETS.items():
        c = ours_phi[kind]
        verdicts.append(
            (
                f"{kind} recall >= {r:.0%} and precision >= {p:.0%}",
                recall(c) >= r and precision(c) >= p,
            )
        )
    fhir_names = by_form(lines, found, "person_name").get("fhir_resource", (0, 0))
    humannames = by_form(lines, found, "person_name").get("fhir_humanname", (0, 0))
    in_fhir = (fhir_names[0] + humannames[0], fhir_names[1] + humannames[1])
    verdicts.append(
        (
            "person names in FHIR resources recall >= 99%",
            in_fhir[1] > 0 and in_fhir[0] / in_fhir[1] >= NAME_IN_FHIR_TARGET,
        )
    )
    verdicts.append(("no planted value in any finding", not leaks))
    print("\nTargets:")
    for text, ok in verdicts:
        print(f"  {'met    ' if ok else 'NOT MET'}  {text}")
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
