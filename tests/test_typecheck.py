"""Everything that touches TensorRT or CUDA is type-checked against TensorRT 10's API
(tensorrt-stubs, fixed by tools/setup_trt_stubs.py) and cuda-python's (typings/cuda).
Without a GPU, this is what catches a TensorRT 8-only call or a wrong argument."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def mypy_snippet(path: Path) -> subprocess.CompletedProcess[str]:
    """mypy --strict on one file, seeing edgevision and typings/ as the project does (their own errors silenced)."""
    env = {**os.environ, "MYPYPATH": f"{ROOT}{os.pathsep}{ROOT / 'typings'}"}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--follow-imports=silent",
         "--config-file", os.devnull, path.name],
        cwd=path.parent, capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.fixture(scope="module")
def stubs() -> Path:
    stub = SITE / "tensorrt_bindings-stubs" / "tensorrt.pyi"
    assert stub.is_file(), (
        "TensorRT stubs missing: .venv/bin/pip install --no-deps tensorrt-stubs && .venv/bin/python tools/setup_trt_stubs.py"
    )
    return stub


def test_installed_stubs_are_usable(stubs: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_trt_stubs.py")], capture_output=True, text=True)
    assert res.returncode == 0 and "already usable" in res.stdout, res.stdout + res.stderr
    # No stub-only `tensorrt/` left to import as an empty namespace package and pass for TensorRT.
    assert not (SITE / "tensorrt").is_dir() or (SITE / "tensorrt" / "__init__.py").is_file()


def test_tensorrt_and_cuda_modules_typecheck(stubs: Path) -> None:
    res = mypy()  # mypy.ini: files, strictness, typings/
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    checked = int(re.search(r"in (\d+) source files", res.stdout).group(1))  # type: ignore[union-attr]
    assert checked >= 20  # edgevision/build, backends/tensorrt/, edgevision/cuda, edgevision/kernels


# One line per mistake; (line marker, mypy error code, what the message must say).
TENSORRT_8 = {
    "build_engine": ("attr-defined", '"Builder" has no attribute "build_engine"'),
    "max_workspace_size": ("attr-defined", '"IBuilderConfig" has no attribute "max_workspace_size"'),
    "execute_async_v2": ("attr-defined", '"IExecutionContext" has no attribute "execute_async_v2"'),
    "get_binding_shape": ("attr-defined", '"ICudaEngine" has no attribute "get_binding_shape"'),
    "set_binding_shape": ("attr-defined", '"IExecutionContext" has no attribute "set_binding_shape"'),
    "num_bindings": ("attr-defined", '"ICudaEngine" has no attribute "num_bindings"'),
    "pool_limit_str": ("arg-type", 'Argument 2 to "set_memory_pool_limit" of "IBuilderConfig" has incompatible type "str"'),
    "stream_object": ("arg-type", 'Argument 1 to "execute_async_v3" of "IExecutionContext" has incompatible type "cudaStream_t"'),
    "address_buffer": ("arg-type", 'Argument 2 to "set_tensor_address" of "IExecutionContext" has incompatible type "DeviceBuffer"'),
    "cuda_malloc": ("arg-type", 'Argument 1 to "cudaMalloc" has incompatible type "str"'),
}

BAD = textwrap.dedent('''
    import tensorrt as trt
    from cuda.bindings import runtime as cudart
    from edgevision.cuda import DeviceBuffer

    def build(builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig) -> None:
        builder.build_engine(network, config)  # build_engine
        config.max_workspace_size = 1 << 30  # max_workspace_size
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, "1G")  # pool_limit_str

    def run(engine: trt.ICudaEngine, ctx: trt.IExecutionContext, stream: cudart.cudaStream_t, buf: DeviceBuffer) -> None:
        ctx.execute_async_v2([0, 0], 0)  # execute_async_v2
        engine.get_binding_shape(0)  # get_binding_shape
        ctx.set_binding_shape(0, (1, 3, 640, 640))  # set_binding_shape
        print(engine.num_bindings)  # num_bindings
        ctx.execute_async_v3(stream)  # stream_object
        ctx.set_tensor_address("images", buf)  # address_buffer
        cudart.cudaMalloc("1024")  # cuda_malloc
''')

GOOD = textwrap.dedent('''
    import tensorrt as trt
    from edgevision.cuda import DeviceBuffer, Stream

    def build(builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig) -> bytes | None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        profile = builder.create_optimization_profile()
        profile.set_shape("images", trt.Dims([1, 3, 640, 640]), trt.Dims([1, 3, 640, 640]), trt.Dims([4, 3, 640, 640]))
        config.add_optimization_profile(profile)
        plan: trt.IHostMemory | None = builder.build_serialized_network(network, config)
        return None if plan is None else bytes(memoryview(plan))

    def run(ctx: trt.IExecutionContext, stream: Stream, buf: DeviceBuffer) -> bool:
        ctx.set_input_shape("images", (1, 3, 640, 640))
        ctx.set_tensor_address("images", buf.ptr)
        return ctx.execute_async_v3(stream.handle)
''')


@pytest.fixture(scope="module")
def bad_report(stubs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """mypy's errors on BAD, by the marker at the end of each line."""
    tmp = tmp_path_factory.mktemp("mypy_bad")
    (tmp / "trt8_snippet.py").write_text(BAD)
    res = mypy_snippet(tmp / "trt8_snippet.py")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = BAD.splitlines()
    by_marker: dict[str, str] = {}
    for err in res.stdout.splitlines():
        m = re.match(r"trt8_snippet\.py:(\d+): error: (.*)", err)
        if m:
            marker = lines[int(m.group(1)) - 1].rsplit("# ", 1)[-1]
            by_marker[marker] = by_marker.get(marker, "") + m.group(2)
    return by_marker


@pytest.mark.parametrize("marker", sorted(TENSORRT_8))
def test_tensorrt8_api_and_wrong_types_fail(bad_report: dict[str, str], marker: str) -> None:
    code, text = TENSORRT_8[marker]
    assert marker in bad_report, f"mypy let `{marker}` through: {bad_report}"
    assert text in bad_report[marker] and f"[{code}]" in bad_report[marker], bad_report[marker]


def test_every_bad_line_is_reported_and_nothing_else(bad_report: dict[str, str]) -> None:
    assert set(bad_report) == set(TENSORRT_8)


def test_the_v3_api_passes(stubs: Path, tmp_path: Path) -> None:
    """The control: correct TensorRT 10 code passes, so the failures above are about the API, not broken stubs."""
    (tmp_path / "v3_snippet.py").write_text(GOOD)
    res = mypy_snippet(tmp_path / "v3_snippet.py")
    assert res.returncode == 0, res.stdout + res.stderr


# tools/setup_trt_stubs.py on a synthetic site-packages with each of the four defects.
BROKEN = {
    "tensorrt/__init__.pyi": "import tensorrt_libs as tensorrt_libs\nbool: tensorrt_bindings.tensorrt.DataType  # value\n",
    "tensorrt_bindings/tensorrt.pyi": (
        "class DataType: ...\nclass Weights: ...\nclass ScaleMode: ...\nclass IScaleLayer: ...\nclass ITensor: ...\n"
        "class IPluginV3:\n"
        "    def get_workspace_size(self: IPluginV3, in: list[int], out: list[int]) -> int: ...\n"
        "class INetworkDefinition:\n"
        "    def add_scale_nd(self, input: ITensor, mode: ScaleMode, shift: Weights = None, scale: Weights = None, "
        "power: Weights = None, channel_axis: int) -> IScaleLayer: ...\n"
        "bool: DataType  # value = <DataType.BOOL: 4>\n"
        "def takes_bool(flag: bool) -> None: ...\n"
    ),
    "tensorrt_bindings/__init__.py": "# a real package's code: must stay where it is\n",
}


def test_setup_trt_stubs_fixes_each_defect_once(tmp_path: Path) -> None:
    for rel, text in BROKEN.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    with pytest.raises(SyntaxError):  # `in` as a parameter name, a default before a non-default
        ast.parse((tmp_path / "tensorrt_bindings/tensorrt.pyi").read_text())
    tool = [sys.executable, str(ROOT / "tools" / "setup_trt_stubs.py"), "--site-packages", str(tmp_path)]
    first = subprocess.run(tool, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    for fix in ("parameter named `in`", "`channel_axis` without a default", "module-level `bool: DataType`",
                "`import tensorrt_libs`", "removed the stub-only directory tensorrt/"):
        assert fix in first.stdout, fix
    main = (tmp_path / "tensorrt-stubs" / "__init__.pyi").read_text()
    core = (tmp_path / "tensorrt_bindings-stubs" / "tensorrt.pyi").read_text()
    ast.parse(main), ast.parse(core)
    assert "tensorrt_libs: _Any" in main and "\nbool:" not in core and "in_: list[int]" in core
    assert "channel_axis: int = ...)" in core
    assert not (tmp_path / "tensorrt").exists()  # stub-only: gone
    assert (tmp_path / "tensorrt_bindings" / "__init__.py").is_file()  # real code: kept
    second = subprocess.run(tool, capture_output=True, text=True)
    assert second.returncode == 0 and "already usable" in second.stdout
    assert (tmp_path / "tensorrt_bindings-stubs" / "tensorrt.pyi").read_text() == core


def test_setup_trt_stubs_without_stubs(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_trt_stubs.py"), "--site-packages", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "pip install --no-deps tensorrt-stubs" in res.stderr
