"""The runtime half must not need torch: its import boundary is tested, not hoped."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import edgevision

ROOT = Path(__file__).resolve().parents[1]

# A meta-path finder that makes the heavy modules unimportable in the child interpreter.
BLOCKER = """
import sys
class _Block:
    blocked = {blocked!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{{name}} is blocked for this test")
        return None
sys.meta_path.insert(0, _Block())
"""


def run_py(code: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=set(blocked)) + code],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def test_import_edgevision_loads_no_heavy_module() -> None:
    res = run_py(
        "import sys, edgevision\n"
        "print(','.join(m for m in ('torch', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', 'cv2', 'onnx', 'cuda.bindings') if m in sys.modules))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""  # ("cuda" itself is preloaded by cuda-bindings' .pth hook)


def runtime_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(edgevision.__path__, "edgevision."))


def test_every_runtime_module_imports_without_torch_tensorrt_cv2() -> None:
    mods = runtime_modules()
    assert "edgevision.pipeline" in mods and "edgevision.cli.run" in mods
    res = run_py(
        "import importlib\n"
        f"for m in {mods!r}:\n"
        "    if m != 'edgevision.__main__': importlib.import_module(m)\n"
        "from edgevision.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n",
        blocked=("torch", "torchvision", "tensorrt", "tensorrt_rtx", "cv2", "ultralytics"),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "convert" in res.stdout and "run" in res.stdout


def test_missing_optional_dependency_names_the_extra() -> None:
    res = run_py(
        "from edgevision.sources import open_source\n"
        "from edgevision.errors import EdgeVisionError\n"
        "try:\n    open_source('x.mp4')\nexcept EdgeVisionError as e:\n    print(e)\n",
        blocked=("cv2",),
    )
    assert res.returncode == 0, res.stderr
    assert "edgevision[video]" in res.stdout
