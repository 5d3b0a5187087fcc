"""The CUDA helpers: typed against stubs that must match cuda-python, clear errors
without a GPU, and (on a GPU) copies and graph replay that move the right bytes."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from edgevision.cuda import CudaError, CudaGraph, DeviceBuffer, Event, PinnedBuffer, Stream
from edgevision.cuda.device import use_device
from edgevision.device import gpu_status

STUB = Path(__file__).resolve().parents[1] / "typings" / "cuda" / "bindings" / "runtime.pyi"
cudart = pytest.importorskip("cuda.bindings.runtime")


def _stub_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(STUB.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _stub_classes() -> dict[str, ast.ClassDef]:
    tree = ast.parse(STUB.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


@pytest.mark.parametrize("name", sorted(_stub_functions()))
def test_stub_signature_matches_cuda_python(name: str) -> None:
    """Same parameter names as the installed function, so a keyword or count mistake in the stub shows."""
    stub = _stub_functions()[name]
    real = inspect.signature(getattr(cudart, name))
    assert [a.arg for a in stub.args.args] == list(real.parameters), name


# Arguments that make each call fail cleanly (there is no driver here, or they are null handles).
CALLS = {
    "cudaGetDeviceCount": (), "cudaGetDeviceProperties": (0,), "cudaSetDevice": (0,),
    "cudaGetErrorName": (cudart.cudaError_t(35),), "cudaGetErrorString": (cudart.cudaError_t(35),),
    "cudaMalloc": (16,), "cudaFree": (0,), "cudaMallocHost": (16,), "cudaFreeHost": (0,),
    "cudaMemcpyAsync": (0, 0, 0, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, 0),
    "cudaStreamCreateWithFlags": (cudart.cudaStreamNonBlocking,), "cudaStreamSynchronize": (0,),
    "cudaStreamDestroy": (cudart.cudaStream_t(0),),
    "cudaStreamBeginCapture": (cudart.cudaStream_t(0), cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
    "cudaStreamEndCapture": (cudart.cudaStream_t(0),), "cudaGraphInstantiate": (cudart.cudaGraph_t(0), 0),
    "cudaGraphLaunch": (cudart.cudaGraphExec_t(0), cudart.cudaStream_t(0)),
    "cudaGraphExecDestroy": (cudart.cudaGraphExec_t(0),), "cudaGraphDestroy": (cudart.cudaGraph_t(0),),
    "cudaDriverGetVersion": (), "cudaEventCreateWithFlags": (cudart.cudaEventDisableTiming,),
    "cudaEventRecord": (cudart.cudaEvent_t(0), cudart.cudaStream_t(0)), "cudaEventQuery": (cudart.cudaEvent_t(0),),
    "cudaEventSynchronize": (cudart.cudaEvent_t(0),), "cudaEventElapsedTime": (cudart.cudaEvent_t(0), cudart.cudaEvent_t(0)),
    "cudaEventDestroy": (cudart.cudaEvent_t(0),),
}


def test_every_stubbed_function_is_exercised_here() -> None:
    assert set(CALLS) == set(_stub_functions())


@pytest.mark.parametrize("name", sorted(CALLS))
def test_stub_return_arity_matches(name: str) -> None:
    """cuda-python returns (err, *values); the stub's tuple must have as many items."""
    if gpu_status().available and name in {"cudaFree", "cudaFreeHost", "cudaStreamDestroy", "cudaGraphExecDestroy",
                                           "cudaGraphDestroy", "cudaGraphLaunch", "cudaStreamEndCapture",
                                           "cudaGraphInstantiate", "cudaStreamBeginCapture", "cudaMemcpyAsync",
                                           "cudaEventRecord", "cudaEventQuery", "cudaEventSynchronize",
                                           "cudaEventElapsedTime", "cudaEventDestroy"}:
        pytest.skip("null handles are only harmless where the driver is absent")
    ret = _stub_functions()[name].returns
    assert isinstance(ret, ast.Subscript) and isinstance(ret.slice, ast.Tuple | ast.Name)
    arity = len(ret.slice.elts) if isinstance(ret.slice, ast.Tuple) else 1
    result = getattr(cudart, name)(*CALLS[name])
    assert isinstance(result, tuple) and len(result) == arity, result


def test_stub_classes_and_members_exist() -> None:
    for cls_name, node in _stub_classes().items():
        real = getattr(cudart, cls_name)
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                if cls_name == "cudaDeviceProp":
                    assert hasattr(real(), item.target.id), (cls_name, item.target.id)
                elif "ClassVar" in ast.unparse(item.annotation):
                    assert hasattr(real, item.target.id), (cls_name, item.target.id)
    for const in ("cudaStreamNonBlocking", "cudaHostAllocDefault", "cudaEventDefault", "cudaEventDisableTiming"):
        assert isinstance(getattr(cudart, const), int)


def _no_gpu_only() -> None:
    if gpu_status().available:
        pytest.skip("checks the no-GPU path; this machine has a GPU")


@pytest.mark.parametrize(
    "make, call",
    [
        (lambda: DeviceBuffer(1024), "cudaMalloc(1024 bytes) failed"),
        (lambda: PinnedBuffer(1024), "cudaMallocHost(1024 bytes) failed"),
        (Stream, "cudaStreamCreateWithFlags failed"),
        (lambda: use_device(0), "cudaSetDevice(0) failed"),
        (Event, "cudaEventCreateWithFlags failed"),
    ],
)
def test_without_a_gpu_every_helper_says_so(make: object, call: str) -> None:
    _no_gpu_only()
    with pytest.raises(CudaError) as info:
        make()  # type: ignore[operator]
    assert call in str(info.value)
    assert info.value.no_gpu and "no usable NVIDIA GPU or driver here" in str(info.value)
    assert any(code in str(info.value) for code in ("cudaErrorInsufficientDriver", "cudaErrorNoDevice"))


def test_gpu_status_reason_names_the_cuda_error() -> None:
    _no_gpu_only()
    status = gpu_status()
    assert not status.available and "cudaGetDeviceCount" in status.reason


def test_buffer_sizes_are_checked_before_cuda() -> None:
    with pytest.raises(ValueError, match="positive size"):
        DeviceBuffer(0)
    with pytest.raises(ValueError, match="positive size"):
        PinnedBuffer(-1)


@pytest.mark.gpu
def test_round_trip_through_the_device() -> None:
    data = np.arange(1000, dtype=np.float32)
    src, dst, dev, stream = PinnedBuffer(data.nbytes), PinnedBuffer(data.nbytes), DeviceBuffer(data.nbytes), Stream()
    src.view(np.float32, data.shape)[:] = data
    stream.copy_to_device(dev, src, data.nbytes)
    stream.copy_to_host(dst, dev, data.nbytes)
    stream.synchronize()
    np.testing.assert_array_equal(dst.view(np.float32, data.shape), data)
    with pytest.raises(ValueError, match="does not fit"):
        stream.copy_to_device(dev, src, data.nbytes + 4)
    for b in (src, dst, dev):
        b.free()
    stream.close()


@pytest.mark.gpu
def test_graph_replays_with_current_host_data() -> None:
    """A captured graph copies from the same pinned addresses each launch, so new data flows through."""
    n = 256
    src, dst, dev, stream = PinnedBuffer(n * 4), PinnedBuffer(n * 4), DeviceBuffer(n * 4), Stream()

    def record(s: Stream) -> None:
        s.copy_to_device(dev, src, n * 4)
        s.copy_to_host(dst, dev, n * 4)

    graph = CudaGraph.capture(stream, record)
    for value in (1.0, 7.0):
        src.view(np.float32, (n,))[:] = value
        graph.launch(stream)
        stream.synchronize()
        assert np.all(dst.view(np.float32, (n,)) == value)
    graph.close()
    stream.close()


@pytest.mark.gpu
def test_pinned_views_share_memory_and_refuse_what_does_not_fit() -> None:
    buf = PinnedBuffer(64)
    a, b = buf.view(np.uint8, (64,)), buf.view(np.float32, (4, 4))
    a[:] = 0
    b[1, 2] = 1.5
    assert a.view(np.float32)[6] == 1.5  # one block of memory seen two ways, no copy
    with pytest.raises(ValueError, match="needs 68 bytes; the pinned buffer holds 64"):
        buf.view(np.float32, (17,))
    buf.free()
    buf.free()  # idempotent: close paths may run twice


@pytest.mark.gpu
def test_events_time_gpu_work_and_order_streams() -> None:
    """Events bracket work on the GPU's clock: a large copy takes measurable time, and an
    event recorded after it is done once the stream is synchronised."""
    n = 64 << 20  # 64 MiB each way
    host, dev, stream = PinnedBuffer(n), DeviceBuffer(n), Stream()
    start, end, marker = Event(), Event(), Event(timing=False)
    host.view(np.uint8, (n,))[:] = 7
    start.record(stream)
    for _ in range(4):
        stream.copy_to_device(dev, host, n)
        stream.copy_to_host(host, dev, n)
    end.record(stream)
    marker.record(stream)
    end.synchronize()
    assert end.done()
    marker.synchronize()  # recorded after `end`: done only once the stream gets there
    assert marker.done()
    ms = end.elapsed_ms(start)
    gbps = 8 * n / (ms * 1e-3) / 1e9
    print(f"\n512 MiB through PCIe/NVLink-C2C in {ms:.2f} ms: {gbps:.1f} GB/s")
    assert 0.05 < ms < 10_000 and gbps < 2_000  # positive, and no faster than any real bus
    with pytest.raises(CudaError, match="cudaEventElapsedTime"):
        end.elapsed_ms(marker)  # a timing-free event cannot be timed: a CUDA error, not a crash
    for obj in (start, end, marker, stream):
        obj.close()
    host.free()
    dev.free()


@pytest.mark.gpu
def test_buffers_made_on_one_thread_work_on_another() -> None:
    """Pipeline threads start with no current device; set_current makes the buffers of the
    model's thread usable there (the TensorRT backend calls it on every inference)."""
    import threading

    from edgevision.cuda.device import set_current

    data = np.arange(4096, dtype=np.int32)
    src, dst, dev = PinnedBuffer(data.nbytes), PinnedBuffer(data.nbytes), DeviceBuffer(data.nbytes)
    src.view(np.int32, data.shape)[:] = data
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            set_current(0)
            stream = Stream()
            stream.copy_to_device(dev, src, data.nbytes)
            stream.copy_to_host(dst, dev, data.nbytes)
            stream.synchronize()
            stream.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert not errors, errors
    np.testing.assert_array_equal(dst.view(np.int32, data.shape), data)
    for b in (src, dst, dev):
        b.free()
