"""make test hands files to its xdist workers heaviest first: tools/test_durations.py sums a JUnit
file per test file, and tests/conftest.py orders the collected items by those sums."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import conftest
from tools.test_durations import file_of, file_seconds

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.test_cli" name="test_a" time="1.5" />
<testcase classname="tests.test_cli" name="test_b[x]" time="2.0" />
<testcase classname="tests.test_file_order.TestSomething" name="test_c" time="7.25" />
<testcase classname="tests.test_cli" name="test_skipped" time="0.0"><skipped message="no gpu" /></testcase>
<testcase classname="nowhere.test_gone" name="test_d" time="100" />
</testsuite></testsuites>
"""


def test_junit_seconds_per_file_heaviest_first(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    assert file_of("tests.test_file_order.TestSomething") == "tests/test_file_order.py"
    assert file_of("nowhere.test_gone") is None  # a file that is not here any more is left out
    seconds = file_seconds(junit)
    assert seconds == {"tests/test_file_order.py": 7.2, "tests/test_cli.py": 3.5}
    assert list(seconds) == ["tests/test_file_order.py", "tests/test_cli.py"]


def test_items_are_ordered_by_file_weight_and_keep_their_order_within_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "file_seconds.json"
    weights.write_text(json.dumps({"tests/test_heavy.py": 90.0, "tests/test_mid.py": 10.0}))
    monkeypatch.setattr(conftest, "FILE_SECONDS", weights)
    ids = ["tests/test_new.py::t1", "tests/test_mid.py::t1", "tests/test_heavy.py::t2[b]", "tests/test_new.py::t2",
           "tests/test_heavy.py::t1", "tests/test_mid.py::t2"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    conftest._heaviest_files_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["tests/test_heavy.py::t2[b]", "tests/test_heavy.py::t1", "tests/test_mid.py::t1",
                                         "tests/test_mid.py::t2", "tests/test_new.py::t1", "tests/test_new.py::t2"]
    weights.write_text("not json")  # unreadable: the collection order stands
    items = [SimpleNamespace(nodeid=i) for i in ids]
    conftest._heaviest_files_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ids


def test_a_real_collection_is_ordered_and_the_fast_tier_still_drops_converting_tests() -> None:
    """In a real pytest run (not the function alone): `-m "not slow"` still drops the tests that
    use a converted artifact (conftest marks them before selection), and the files come out
    heaviest first whatever the command line's order."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    seconds = json.loads(conftest.FILE_SECONDS.read_text())
    assert seconds["tests/test_cli.py"] > seconds.get("tests/test_file_order.py", 0.0)

    def collect(*args: str) -> list[str]:
        run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args,
                              "tests/test_file_order.py", "tests/test_cli.py"], cwd=root, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        return [line for line in run.stdout.splitlines() if "::" in line]

    every = collect()
    assert every[0].startswith("tests/test_cli.py::") and every[-1].startswith("tests/test_file_order.py::")
    converting = [i for i in every if i.startswith("tests/test_cli.py::test_bad_input_gets_one_clear_error")]
    assert converting  # uses seg_onnx: marked slow by conftest
    fast = collect("-m", "not slow")
    assert not set(converting) & set(fast) and len(fast) < len(every)
