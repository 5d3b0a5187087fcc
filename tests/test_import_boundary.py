"""The runtime half must not need torch, nor the build side: its import boundary is tested,
not hoped. In a subprocess with modules made unimportable, and from the source (the direction
of every import, and no cycles)."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        blocked=("torch", "torchvision", "tensorrt", "tensorrt_rtx", "cv2", "ultralytics", "scipy"),
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


# -- the direction, read from the source: every import statement, also inside functions and
# TYPE_CHECKING blocks, and string imports (importlib.import_module("..."), lazy_import("...")).
PACKAGES = ("edgevision", "converters")
BUILDER = "edgevision.build"
TORCH = ("torch", "torchvision", "ultralytics")
STRING_IMPORTERS = {"import_module", "lazy_import", "__import__"}


def source_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = source_modules()


def imported_names(module: str, path: Path) -> set[str]:
    """What `module` imports, as dotted names: `from pkg import sub` names pkg.sub when that is a
    module of ours, else pkg; relative imports are resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in STRING_IMPORTERS and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def within(name: str, roots: tuple[str, ...] | str) -> bool:
    return any(name == r or name.startswith(f"{r}.") for r in ((roots,) if isinstance(roots, str) else roots))


GRAPH = {m: imported_names(m, p) for m, p in MODULES.items()}


def test_the_graph_sees_what_it_must() -> None:
    """The rules below are only as good as the reading: check it on known imports."""
    assert "edgevision.backends.tensorrt.sidecar" in GRAPH["edgevision.build.engine"]  # from ..backends.tensorrt.sidecar
    assert "edgevision.errors" in GRAPH["edgevision.sinks"]  # from .errors import
    assert "converters.precision" in GRAPH["converters.cli.convert"]  # from ..precision import, inside main()
    assert "onnxruntime" in GRAPH["edgevision.backends.onnxruntime"]  # lazy_import("onnxruntime")
    assert "torch" in GRAPH["converters.export"]


@pytest.mark.parametrize("side, forbidden", [
    ("runtime", ("converters", *TORCH, BUILDER)),
    ("builder", ("converters", *TORCH)),
])
def test_imports_point_one_way(side: str, forbidden: tuple[str, ...]) -> None:
    """The runtime (edgevision/ minus edgevision/build/) never imports the build side: converters,
    torch or the builder; the builder runs on the device, so it never imports torch or converters
    (it may import the runtime: it writes what the TensorRT backend reads)."""
    modules = [m for m in GRAPH if within(m, BUILDER) == (side == "builder") and within(m, "edgevision")]
    assert modules
    bad = sorted(f"{m} imports {n}" for m in modules for n in GRAPH[m] if within(n, forbidden))
    assert not bad, "\n".join(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    """No two modules import each other, directly or round a loop (sinks.py <-> webpreview.py did):
    every module can be read, and imported, after the ones it uses."""
    found = cycles(GRAPH)
    assert not found, found


def test_the_runtime_runs_without_the_build_side() -> None:
    """converters (and torch) unimportable: every edgevision module imports, the runtime's commands
    are there, and the build side's say in one sentence what to install."""
    res = run_py(
        "import importlib\n"
        f"for m in {runtime_modules()!r}:\n"
        "    if m != 'edgevision.__main__': importlib.import_module(m)\n"
        "from edgevision.cli import main\n"
        "print('rc', main(['convert', 'model.pt']))\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n",
        blocked=("converters", "torch", "torchvision", "ultralytics"),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "rc 1" in res.stdout and "Traceback" not in res.stderr
    assert "edgevision convert: error: this command is unavailable here: converters is needed for converting " \
           "PyTorch models (the build side)" in res.stderr
    assert "Install it with: pip install 'edgevision[convert]'" in res.stderr
    assert "run an artifact" in res.stdout and "convert   (unavailable here: pip install 'edgevision[convert]')" in res.stdout
