"""Make the `tensorrt-stubs` package usable by mypy, in place and idempotently.

    python tools/setup_trt_stubs.py [--site-packages DIR]

Install the stubs first with `pip install --no-deps tensorrt-stubs` (the Makefile does).
As shipped (10.13) mypy ignores them and they do not even parse, so this script:

1. moves the `.pyi` files of `tensorrt/` and `tensorrt_bindings/` into PEP 561 stub
   packages `tensorrt-stubs/` and `tensorrt_bindings-stubs/`. Besides making mypy see
   them, this removes the bare `tensorrt/` directory that would otherwise import as an
   empty namespace package and pass for a real TensorRT install. A real TensorRT package
   in the same directory (it has an `__init__.py`) keeps everything but the `.pyi` files;
2. renames the parameter named `in` (a keyword: a syntax error) to `in_`;
3. gives `channel_axis` in `add_scale_nd` a default (a non-default parameter after
   defaulted ones: a syntax error);
4. deletes the module-level `bool: DataType` lines, which shadow `builtins.bool` in every
   annotation that follows them;
5. replaces `import tensorrt_libs` (a wheel the stubs do not depend on) by an `Any`.

Running it again changes nothing. Exit status 1 when no stubs are installed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import sysconfig
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")

# (pattern, replacement, what it fixes); applied to every .pyi of the stub packages.
FIXES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(\(self(?:: \w+)?, )in: "), r"\1in_: ", "parameter named `in`"),
    (re.compile(r"(power: Weights = None, channel_axis: int)\)"), r"\1 = ...)", "`channel_axis` without a default"),
    (re.compile(r"^bool: .*\n", re.M), "", "module-level `bool: DataType`"),
    (
        re.compile(r"^import tensorrt_libs as tensorrt_libs$", re.M),
        "from typing import Any as _Any\ntensorrt_libs: _Any",
        "`import tensorrt_libs`",
    ),
)


def move_stubs(site: Path, name: str) -> list[str]:
    """Move <site>/<name>/**.pyi into <site>/<name>-stubs/; drop <name>/ if nothing real is left."""
    src, dst = site / name, site / f"{name}-stubs"
    done: list[str] = []
    if not src.is_dir():
        return done
    stubs = sorted(src.rglob("*.pyi"))
    for stub in stubs:
        target = dst / stub.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A fresh `pip install tensorrt-stubs` over a fixed tree: the new file wins, then gets fixed.
        shutil.move(str(stub), str(target))
    if stubs:
        done.append(f"moved {len(stubs)} stub file(s) {src.name}/ -> {dst.name}/")
    leftovers = [p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    if not leftovers:
        shutil.rmtree(src)
        done.append(f"removed the stub-only directory {src.name}/ (it imported as an empty namespace package)")
    return done


def patch_stub(path: Path) -> list[str]:
    text = path.read_text()
    done = []
    for pattern, repl, what in FIXES:
        text, n = pattern.subn(repl, text)
        if n:
            done.append(f"{path.parent.name}/{path.name}: fixed {what} ({n}x)")
    if done:
        path.write_text(text)
    return done


def setup(site: Path) -> list[str]:
    """Apply every fix under `site`; returns what changed (empty when already fixed)."""
    changes: list[str] = []
    for name in PACKAGES:
        changes += move_stubs(site, name)
    stub_dirs = [site / f"{name}-stubs" for name in PACKAGES if (site / f"{name}-stubs").is_dir()]
    if not stub_dirs:
        raise FileNotFoundError(
            f"no TensorRT stubs under {site}; install them first: pip install --no-deps tensorrt-stubs"
        )
    for d in stub_dirs:
        for stub in sorted(d.rglob("*.pyi")):
            changes += patch_stub(stub)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site-packages", type=Path, default=Path(sysconfig.get_paths()["purelib"]),
                        help="site-packages holding the stubs (default: this interpreter's)")
    args = parser.parse_args(argv)
    try:
        changes = setup(args.site_packages)
    except FileNotFoundError as exc:
        print(f"setup_trt_stubs: {exc}", file=sys.stderr)
        return 1
    for line in changes:
        print(f"setup_trt_stubs: {line}")
    if not changes:
        print(f"setup_trt_stubs: TensorRT stubs in {args.site_packages} are already usable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
