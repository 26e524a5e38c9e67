"""``auditor schema``: print the JSON Schema of each data contract.

Producers in other languages validate what they send against it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel

from auditor.models import AuthzEvent, Finding

CONTRACTS: dict[str, type[BaseModel]] = {"authz-event": AuthzEvent, "finding": Finding}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor schema``."""
    parser.add_argument(
        "contract",
        nargs="?",
        choices=sorted(CONTRACTS),
        help="print only this contract's schema (default: all, keyed by name)",
    )


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one contract."""
    schema = CONTRACTS[name].model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:cds-hooks-auditor:schema:{name}:v1"
    return schema


def run(args: argparse.Namespace) -> int:
    """Write the schema(s) as JSON to stdout."""
    doc: dict[str, Any] = (
        schema_of(args.contract) if args.contract else {n: schema_of(n) for n in sorted(CONTRACTS)}
    )
    json.dump(doc, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0
