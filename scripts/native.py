"""Compile the hot modules with mypyc, next to their sources (see auditor/_native.py).

    .venv/bin/python scripts/native.py            build when the sources changed since
    .venv/bin/python scripts/native.py --check    exit 0 when the build matches, 1 if not
    .venv/bin/python scripts/native.py --clean    remove the build (source modules are used)
    .venv/bin/python scripts/native.py --force    rebuild even when it matches

``scripts/setup`` runs it, so the README's two commands build (or reuse) it. The build
happens in a scratch directory that links the packages (setuptools must not read this
project's pyproject.toml: it is built by hatchling) with mypy's configuration taken from
pyproject.toml, so the compiled modules are type-checked exactly as ``mypy`` checks them.
Needs a C compiler and the Python headers; without them the source modules keep working.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auditor._native import GROUP, MANIFEST, MODULES, PACKAGES, build_state, source_digest  # noqa: E402

SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="auditor-native",
    py_modules=[],
    packages=[],
    ext_modules=mypycify(["--config-file=mypy.ini", *{files!r}], group_name={group!r}),
    script_args=["build_ext", "--inplace"],
)
"""


def mypy_ini(pyproject: Path) -> str:
    """The settings of mypy from ``[tool.mypy]`` of pyproject.toml, as an ini file for mypyc."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mypy"]

    def ini(value: object) -> str:
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)

    lines = ["[mypy]"]
    lines += [f"{k} = {ini(v)}" for k, v in config.items() if k not in {"packages", "overrides"}]
    for override in config.get("overrides", []):
        lines.append(f"[mypy-{','.join(override['module'])}]")
        lines += [f"{k} = {ini(v)}" for k, v in override.items() if k != "module"]
    return "\n".join(lines) + "\n"


def built_files() -> list[Path]:
    """Every extension module a build leaves in the tree (any module, any Python)."""
    found = [p for package in PACKAGES for p in (ROOT / package).rglob("*.so")]
    return found + list(ROOT.glob(f"{GROUP}__mypyc*.so"))


def clean() -> None:
    """Remove the build: the manifest first, so a half-removed build is never used."""
    (ROOT / MANIFEST).unlink(missing_ok=True)
    for path in built_files():
        path.unlink()


def build() -> None:
    """Compile ``MODULES`` into extension modules beside their sources, then record it."""
    digest = source_digest(ROOT)  # of the sources compiled: an edit during the build is stale
    clean()
    files = [str(Path(*name.split(".")).with_suffix(".py")) for name in MODULES]
    started = time.monotonic()
    print(f"native: compiling {len(files)} modules with mypyc (a few minutes)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="auditor-native-") as scratch:
        work = Path(scratch)
        for package in PACKAGES:
            (work / package).symlink_to(ROOT / package, target_is_directory=True)
        (work / "mypy.ini").write_text(mypy_ini(ROOT / "pyproject.toml"), encoding="utf-8")
        (work / "setup.py").write_text(SETUP.format(files=files, group=GROUP), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "setup.py"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            clean()
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            print("native: the build failed; the source modules are used", file=sys.stderr)
            raise SystemExit(1)
        suffix = EXTENSION_SUFFIXES[0]
        shutil.copy2(work / f"{GROUP}__mypyc{suffix}", ROOT / f"{GROUP}__mypyc{suffix}")
    missing = [n for n in MODULES if not (ROOT / Path(*n.split("."))).with_suffix(suffix).exists()]
    if missing:
        clean()
        print(f"native: the build left no module for {missing}", file=sys.stderr)
        raise SystemExit(1)
    manifest = {"digest": digest, "modules": list(MODULES), "python": sys.version.split()[0]}
    (ROOT / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"native: built in {time.monotonic() - started:.0f} s", file=sys.stderr)


def main() -> None:
    """Build, check or clean, as asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 0 if the build matches")
    group.add_argument("--clean", action="store_true", help="remove the build")
    group.add_argument("--force", action="store_true", help="rebuild even if it matches")
    args = parser.parse_args()
    state = build_state(ROOT)
    if args.check:
        print(f"native: {state}", file=sys.stderr)
        raise SystemExit(0 if state == "compiled" else 1)
    if args.clean:
        clean()
    elif args.force or state != "compiled":
        build()


if __name__ == "__main__":
    main()
