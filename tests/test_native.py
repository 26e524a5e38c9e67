"""The compiled build of the hot modules is used exactly when it matches its source.

A build that no longer matches would run old code in place of the edited source (Python
prefers an extension module to the ``.py`` beside it); ``auditor._native`` must refuse it.
The compiled and the source modules must also behave the same: the stream tests run again
in a process that uses the source modules, and so do the scan's (patterns, content
detectors, ``auditor scan``).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from auditor import _native
from auditor._native import MANIFEST, MODULES, SourceFinder, build_state, source_digest, status

ROOT = Path(__file__).resolve().parent.parent


def _tree(tmp_path: Path) -> Path:
    """A checkout-like tree: two packages with one module each."""
    for package in _native.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "detectors" / "hot.py").write_text("VALUE = 1\n", encoding="utf-8")
    return tmp_path


def _record(root: Path) -> None:
    (root / MANIFEST).write_text(json.dumps({"digest": source_digest(root)}), encoding="utf-8")


@pytest.fixture
def native_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDITOR_NATIVE", raising=False)


@pytest.mark.usefixtures("native_env")
def test_a_build_is_used_only_while_every_source_file_matches(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert build_state(root) == "absent"
    _record(root)
    assert build_state(root) == "compiled"
    # Any source file of the packages counts, not only the compiled ones: a constant or a
    # class layout a compiled module was built against may live elsewhere.
    (root / "auditor" / "elsewhere.py").write_text("LIMIT = 2\n", encoding="utf-8")
    assert build_state(root) == "stale"
    _record(root)
    (root / "detectors" / "hot.py").write_text("VALUE = 2\n", encoding="utf-8")
    assert build_state(root) == "stale"


@pytest.mark.parametrize("manifest", ["", "{", '{"other": 1}', '["digest"]', '{"digest": 7}'])
@pytest.mark.usefixtures("native_env")
def test_an_unreadable_manifest_means_no_build(tmp_path: Path, manifest: str) -> None:
    root = _tree(tmp_path)
    (root / MANIFEST).write_text(manifest, encoding="utf-8")
    assert build_state(root) in {"absent", "stale"}
    assert build_state(root) != "compiled"


def test_auditor_native_0_disables_a_matching_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    _record(root)
    monkeypatch.setenv("AUDITOR_NATIVE", "0")
    assert build_state(root) == "disabled"


def test_the_source_finder_loads_the_py_file_past_an_extension_module_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    (root / "hotpkg").mkdir(parents=True)
    (root / "hotpkg" / "__init__.py").write_text("", encoding="utf-8")
    (root / "hotpkg" / "mod.py").write_text("WHERE = 'source'\n", encoding="utf-8")
    # Not a loadable library: importing the extension fails, so success proves the .py.
    (root / "hotpkg" / f"mod{EXTENSION_SUFFIXES[0]}").write_bytes(b"not an ELF file")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    with pytest.raises(ImportError):
        importlib.import_module("hotpkg.mod")
    finder = SourceFinder(root, ["hotpkg.mod"])
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    sys.modules.pop("hotpkg.mod", None)
    module = importlib.import_module("hotpkg.mod")
    assert module.WHERE == "source"
    assert module.__file__ == str(root / "hotpkg" / "mod.py")
    assert finder.find_spec("hotpkg", None) is None  # anything else: the usual search
    sys.modules.pop("hotpkg.mod", None)
    sys.modules.pop("hotpkg", None)


def test_this_process_uses_all_compiled_modules_or_none() -> None:
    for name in MODULES:
        importlib.import_module(name)
    now = status()
    if os.environ.get("AUDITOR_EXPECT_NATIVE") == "1":  # scripts/test sets it after a build
        assert now.state == "compiled"
    if now.state == "compiled":
        assert now.loaded == MODULES
    else:
        assert now.loaded == ()
    assert now.describe().startswith(f"native modules: {now.state} ")


def test_auditor_native_0_runs_the_source_modules() -> None:
    code = (
        "import detectors, pipelines.runtime\n"
        "from auditor._native import status\n"
        "import detectors.replay\n"
        "print(status().state, detectors.replay.__file__.endswith('.py'), status().loaded)\n"
    )
    env = {**os.environ, "AUDITOR_NATIVE": "0"}
    result = subprocess.run(  # noqa: S603 - our interpreter and code
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["disabled", "True", "()"]


@pytest.mark.slow
def test_the_stream_scan_and_redaction_tests_pass_on_the_source_modules_too() -> None:
    """The source modules are what a checkout without a C compiler runs: same behaviour."""
    env = {**os.environ, "AUDITOR_NATIVE": "0", "AUDITOR_EXPECT_NATIVE": "0"}
    files = [
        "tests/test_stream_golden.py",
        "tests/test_stream_contract.py",
        "tests/test_stream_runtime.py",
        "tests/test_authz_view.py",
        "tests/test_finding_building.py",
        "tests/test_cli_scan.py",
        "tests/test_logfiles.py",
        "tests/test_content_contract.py",
        "tests/test_content_fast_path.py",
        "tests/test_leaked_token.py",
        "tests/test_phi_in_logs.py",
        "tests/test_patterns_anchors.py",
        "tests/test_patterns_hostile.py",
        "tests/test_patterns_identify.py",
        "tests/test_patterns_jwt.py",
        "tests/test_patterns_jwt_decoding.py",
        "tests/test_patterns_lookalikes.py",
        "tests/test_patterns_placeholders.py",
        "tests/test_patterns_prefilter.py",
        "tests/test_patterns_rewrites.py",
        "tests/test_patterns_scheme_boundary.py",
        "tests/test_patterns_structure.py",
        "tests/test_patterns_text.py",
        "tests/test_patterns_walk_once.py",
        "tests/test_scan_baseline.py",
        "tests/test_trigger_search.py",
        "tests/test_findings_refuse_credentials.py",
        "tests/test_finding_fields_guard.py",
        "tests/test_redactor.py",
        "tests/test_redaction_adapters.py",
        "tests/test_redaction_flat_keys.py",
        "tests/test_redaction_memory.py",
        "tests/test_cli_redact.py",
        "tests/test_fingerprints.py",
        "tests/test_fingerprint_short.py",
    ]
    result = subprocess.run(  # noqa: S603 - our interpreter and test files
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
    assert "failed" not in result.stdout
