"""Seconds per test file from a pytest JUnit file -> tests/file_seconds.json (heaviest first).

`make test` writes runs/pytest-junit.xml; `make test-durations` runs this on it. tests/conftest.py
orders the files by these seconds so that two xdist workers do not end on one long file.

    python tools/test_durations.py runs/pytest-junit.xml [-o tests/file_seconds.json]
"""
from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def file_of(classname: str) -> str | None:
    """'tests.test_x.TestY' -> 'tests/test_x.py' (the longest dotted prefix that is a file here)."""
    parts = classname.split(".")
    for n in range(len(parts), 0, -1):
        rel = "/".join(parts[:n]) + ".py"
        if (ROOT / rel).is_file():
            return rel
    return None


def file_seconds(junit: Path) -> dict[str, float]:
    """{test file: seconds of its tests (setup, call and teardown, as JUnit reports them)}, heaviest first."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit).getroot().iter("testcase"):
        path = file_of(case.get("classname", ""))
        if path:
            totals[path] += float(case.get("time") or 0.0)
    return {k: round(v, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "tests" / "file_seconds.json")
    args = ap.parse_args()
    if not args.junit.is_file():
        raise SystemExit(f"{args.junit}: no such file; `make test` writes it")
    seconds = file_seconds(args.junit)
    if not seconds:
        raise SystemExit(f"{args.junit}: no test cases with a file here")
    args.out.write_text(json.dumps(seconds, indent=1) + "\n")
    print(f"{args.out}: {len(seconds)} files, {sum(seconds.values()):.0f} s in all; heaviest: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in list(seconds.items())[:5]))


if __name__ == "__main__":
    main()
