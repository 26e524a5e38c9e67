"""Compiled builds of the hot modules, used only while they match their source.

The modules in ``MODULES`` are plain, strictly typed Python. ``scripts/native`` compiles
them with mypyc into extension modules next to their sources (git-ignored) and records, in
``MANIFEST``, a digest of every source file of the packages they were compiled from. Python
prefers an extension module to the ``.py`` beside it, so a build that no longer matches its
source would silently run old code; this module prevents that. When ``auditor`` is
imported, ``activate()`` compares the recorded digest with the sources on disk and, unless
they match, makes every module of the group load from source — all of them or none, as
compiled modules of one group call each other directly.

``AUDITOR_NATIVE=0`` forces the source modules (to compare the two, or to debug).
``status()`` says which is in use; benchmarks print it with their figures.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["GROUP", "MANIFEST", "MODULES", "NativeStatus", "activate", "source_digest", "status"]

#: The compiled modules: the per-event paths of the stream detectors and their runtime, and
#: the per-line path of ``auditor scan`` (pattern library, content detectors, reader, reports).
MODULES: Final = (
    "auditor.fingerprints",
    "auditor.models.view",
    "auditor.patterns.jwt",
    "auditor.patterns.keyed",
    "auditor.patterns.keys",
    "auditor.patterns.library",
    "auditor.patterns.lookalikes",
    "auditor.patterns.matches",
    "auditor.patterns.memory",
    "auditor.patterns.prefilter",
    "auditor.patterns.rules",
    "auditor.patterns.shapes",
    "auditor.patterns.validators",
    "auditor.patterns.walk",
    "auditor.redaction.gathering",
    "auditor.redaction.redactor",
    "detectors._anomaly_incidents",
    "detectors._episodes",
    "detectors._incidents",
    "detectors._jti_table",
    "detectors._policy_checks",
    "detectors._replay_incidents",
    "detectors.anomaly",
    "detectors.baseline",
    "detectors.building",
    "detectors.content",
    "detectors.evidence",
    "detectors.findings",
    "detectors.flattening",
    "detectors.gathering",
    "detectors.leaked_token",
    "detectors.phi_in_logs",
    "detectors.policy",
    "detectors.replay",
    "detectors.triage",
    "detectors.triggers",
    "pipelines.logfiles",
    "pipelines.runtime.runtime",
    "pipelines.scan.command",
    "pipelines.scan.records",
    "pipelines.scan.reports",
    "pipelines.topology.authz_mirror",
    "pipelines.topology.decoding",
    "pipelines.topology.detection",
    "pipelines.topology.scrubbing",
)
#: The mypyc group: its shared library is ``<GROUP>__mypyc<suffix>`` beside the packages.
GROUP: Final = "auditor_native"
#: The packages whose sources a build depends on (what the compiled modules may import).
PACKAGES: Final = ("auditor", "detectors", "pipelines")
#: Where a build records its digest, relative to the directory holding the packages.
MANIFEST: Final = Path("auditor") / "_native_build.json"

State = Literal["compiled", "stale", "absent", "disabled"]


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """Whether the compiled modules are in use, and why not when they are not.

    Attributes:
        state: ``compiled`` (the build matches its source and is used), ``stale`` (a build
            exists but the source changed since: the source is used), ``absent`` (no
            build), ``disabled`` (``AUDITOR_NATIVE=0``).
        loaded: Of the modules imported so far, those that run compiled.
    """

    state: State
    loaded: tuple[str, ...]

    def describe(self) -> str:
        """One line for the header of a benchmark or a bug report."""
        return (
            f"native modules: {self.state} ({len(self.loaded)} of {len(MODULES)} loaded compiled)"
        )


def source_digest(root: Path, packages: Sequence[str] = PACKAGES) -> str:
    """SHA-256 over the path and content of every ``.py`` file of ``packages`` under ``root``.

    Also covers the interpreter's tag: a build for another Python is not this one's.
    """
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def build_state(root: Path) -> State:
    """The state of the build under ``root``, before anything is imported from it."""
    if os.environ.get("AUDITOR_NATIVE", "") == "0":
        return "disabled"
    try:
        recorded = json.loads((root / MANIFEST).read_text(encoding="utf-8"))["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return "absent"
    return "compiled" if recorded == source_digest(root) else "stale"


class SourceFinder(MetaPathFinder):
    """Loads the listed modules from their ``.py`` files, never from a compiled build.

    Args:
        root: The directory that holds the packages.
        modules: Dotted names of the modules to load from source.
    """

    def __init__(self, root: Path, modules: Sequence[str]) -> None:
        self._root = root
        self._modules = frozenset(modules)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        """The source spec of a listed module; ``None`` (the usual search) otherwise."""
        del path, target
        if fullname not in self._modules:
            return None
        origin = self._root.joinpath(*fullname.split(".")).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, origin)


_state: State = "absent"


def activate(root: Path | None = None) -> State:
    """Decide once, before any listed module is imported, whether the build is used.

    Args:
        root: The directory holding the packages; by default the one this file is in.

    Returns:
        The state of the build; unless ``compiled``, the listed modules load from source.
    """
    global _state  # noqa: PLW0603 - decided once per process, at import of ``auditor``
    where = Path(__file__).resolve().parent.parent if root is None else root
    _state = build_state(where)
    if _state != "compiled" and not any(isinstance(f, SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder(where, MODULES))
    return _state


def status() -> NativeStatus:
    """The state decided at import, and which imported listed modules run compiled."""
    loaded = tuple(
        name
        for name in MODULES
        if (module := sys.modules.get(name)) is not None
        and not str(getattr(module, "__file__", "")).endswith(".py")
    )
    return NativeStatus(_state, loaded)


activate()
