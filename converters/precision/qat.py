"""`--qat`: label-free distillation of the fake-quantized model against the FP32 model.

The student is the PyTorch module the converter exports (BatchNorm already folded by the
family, e.g. Ultralytics' fuse, so the weights trained are the weights exported), with fake
quantization placed exactly where the TensorRT Q/DQ graph (qdq.py) quantizes:
- each quantized layer's activation input: int8 symmetric per tensor, zero point 0, scale =
  calibrated amax / 127 (the ONNX calibration's ranges, fixed or learned LSQ-style);
- its weight: int8 symmetric per output channel, scale = per-channel amax / 127 recomputed
  from the current weight (what qdq.weight_qdq does at export);
- the layers INT8 keeps float (stem, final layers, protected groups) get neither.
The teacher is a frozen copy of the same module without fake quantization. Targets are the
raw outputs of the graph's final layers (a YOLO's box-distribution, class-logit and
mask-coefficient convolutions and its prototype convolution; a classifier's last Linear): what
the float post-processing reads, before any decode or NMS. No labels are used.

Family-agnostic: ONNX node names follow torch module paths (`/model/model.3/conv/Conv` is the
module `model.model.3.conv` of the exported wrapper: module_path), so any torch family whose export keeps
those scopes trains here. Frames are the user's own calibration frames, augmented (random
crop / zoom, 2x2 mosaics for smaller objects, flips, colour jitter) so the model sees more than
one clip's scale and colours; a few calibration frames are held out, never trained on, and
score each checkpoint (the best one is kept, also on Ctrl-C).
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevision._lazy import lazy_import
from edgevision.device import usable_cores
from edgevision.errors import EdgeVisionError
from edgevision.manifest import Manifest

from .calibration import Ranges, TensorRange
from .qdq import QMAX
from .regions import Layer

QMIN_INT, QMAX_INT = -int(QMAX), int(QMAX)  # narrow range [-127, 127], as qdq.py / TensorRT


@dataclass
class QatOptions:
    """minutes / steps: stop at whichever comes first (steps None: time only). batch: augmented
    frames per step. lr: Adam's learning rate. held_out: calibration frames kept out of training
    that score checkpoints. eval_every: steps between held-out scores. learn_scales: activation
    scales trained LSQ-style (else fixed at the calibration's). feature_weight: weight of an extra
    loss on the quantized layers' inputs (intermediate features; 0: outputs only). threads: torch
    CPU threads while training (0: every core it may use; the caller's setting is restored after). opset: of
    the fine-tuned export (the FP32 artifact's, so node names match). imgsz: the side frames are letterboxed to for training when smaller than the
    artifact's input (4x fewer pixels at 320 than 640: 4x the steps in the same minutes on a CPU);
    the held-out loss is measured there too."""

    minutes: float = 5.0
    steps: int | None = None
    batch: int = 4
    lr: float = 1e-5  # measured: 1e-4 (Adam) tripled the held-out loss in 5 steps; 1e-5 lowered it from the first
    held_out: int = 4
    eval_every: int = 10
    learn_scales: bool = False
    feature_weight: float = 0.0
    threads: int = 0
    opset: int = 17
    seed: int = 0
    warmup: int = 10  # steps of linear learning-rate warm-up (Adam's first steps move every weight by lr)
    imgsz: int | None = 320  # training input side (a fully convolutional network's weights serve any size); None: the artifact's


@dataclass
class QatProgress:
    """One progress report: step, its training loss, the latest held-out loss, seconds left."""

    step: int
    steps: int | None
    loss: float
    held_out_loss: float
    best_held_out_loss: float
    eta_s: float

    def line(self) -> str:
        of = f"/{self.steps}" if self.steps else ""
        return (f"qat step {self.step}{of}: loss {self.loss:.4f}, held-out {self.held_out_loss:.4f} "
                f"(best {self.best_held_out_loss:.4f}), ETA {self.eta_s:.0f} s")


@dataclass
class QatResult:
    """What distillation did. onnx_path: the fine-tuned model exported as FP32 ONNX (same node
    names as the original). loss_before / loss_after: held-out distillation loss of the
    fake-quantized model before training and at the kept (best) checkpoint."""

    onnx_path: Path
    steps: int
    best_step: int
    seconds: float
    loss_before: float
    loss_after: float
    train_frames: int
    held_out_frames: int
    stopped: str  # "time", "steps" or "interrupted"
    options: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)  # tensor -> learned amax (learn_scales)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["onnx_path"] = str(self.onnx_path)
        d.pop("scales")
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in d.items()}

    def summary(self) -> str:
        return (f"{self.steps} steps in {self.seconds / 60:.1f} min ({self.stopped}), best at step {self.best_step}; "
                f"held-out distillation loss {self.loss_before:.4f} -> {self.loss_after:.4f}; "
                f"{self.train_frames} calibration frames (augmented) trained on, {self.held_out_frames} held out")


def module_path(root: Any, node_name: str) -> str | None:
    """ONNX node name -> the path of the torch module (under root) that produced it, or None.

    The exporter names scopes after module attributes: '/model/model.3/conv/Conv' is
    `model.model.3.conv`. A container called as a module (a Sequential's forward) is a scope
    of its own whose children repeat its name: '/model.6/m.0/m/m.0/cv1/conv/Conv' is
    `model.6.m.0.m.0.cv1.conv` (C3k's Sequential `m`, then its child `m.0`), and
    '/model.23/cv2.0/cv2.0.0/conv/Conv' is `model.23.cv2.0.0.conv`."""
    comps = [p for p in node_name.split("/") if p][:-1]
    mod, path, prev = root, list[str](), list[str]()
    for c in comps:
        parts = c.split(".")
        found = _descend(mod, parts)
        if found is None and prev and parts[:len(prev)] == prev:
            found = _descend(mod, parts[len(prev):])
            step = parts[len(prev):]
        else:
            step = parts
        if found is None:
            return None
        mod, path, prev = found, path + step, parts
    return ".".join(path)


def _descend(mod: Any, parts: Sequence[str]) -> Any:
    """The submodule at mod.<parts...>, or None where there is none."""
    try:
        return mod.get_submodule(".".join(parts))
    except AttributeError:
        return None


def check_qat_source(model_path: str | Path) -> None:
    """Refuse --qat where there is no PyTorch model to fine-tune (before any work)."""
    if Path(model_path).suffix.lower() == ".onnx":
        raise EdgeVisionError(
            f"--qat needs the PyTorch model (e.g. yolo11n-seg.pt) to fine-tune; {model_path} is an ONNX file. "
            "Convert the checkpoint instead, or drop --qat for post-training INT8")


def qat_exportable(model_path: Path, export_opts: Any) -> Any:
    """The family's Exportable for model_path (the module the converter exports), refused with a
    clear message where it is not a torch module (a foreign ONNX file)."""
    torch = lazy_import("torch")
    from converters.families import Request, find_family
    from converters.intake import open_checkpoint

    check_qat_source(model_path)
    ckpt = open_checkpoint(model_path, trust=export_opts.trust)
    req = Request(model_path, export_opts.arch, export_opts.task, export_opts.num_classes, export_opts.class_names,
                  export_opts.trust, export_opts.imgsz, None, export_opts)
    ex = find_family(ckpt, req).prepare(ckpt, req)
    if ex.write is not None or not isinstance(ex.module, torch.nn.Module):
        raise EdgeVisionError(f"--qat needs the PyTorch model; {model_path} ({ckpt.kind}) exports no torch module")
    return ex


class _Captured(Exception):
    """Raised by the last output hook: the post-processing after the final layers is skipped."""


class FakeQuant:
    """Fake quantization hooks on a torch module, mirroring qdq.insert_qdq's placement.

    layers: the ONNX layers quantized; inputs: layer name -> the tensor name of its activation
    input (its calibrated range is ranges.amax(tensor)); learn: activation scales are
    nn.Parameters trained with LSQ's gradient (torch._fake_quantize_learnable_per_tensor_affine)."""

    def __init__(self, module: Any, layers: Sequence[Layer], inputs: dict[str, str], ranges: Ranges,
                 learn: bool = False) -> None:
        torch = lazy_import("torch")
        from torch.nn.utils import parametrize

        self.module, self.learn = module, learn
        self.scales: dict[str, Any] = {}  # tensor name -> scale (tensor; Parameter when learned)
        self.handles: list[Any] = []
        self.parametrized: list[Any] = []
        self.features: list[Any] = []  # the quantized layers' float inputs of the last forward
        self.record_features = False
        mods = dict(module.named_modules())
        for layer in layers:
            path = module_path(module, layer.name)
            if path is None or path not in mods:
                raise EdgeVisionError(f"--qat: ONNX layer {layer.name} has no torch module {path!r} "
                                      "(the family's export does not keep module scopes)")
            m = mods[path]
            t = inputs[layer.name]
            if t not in self.scales:
                # one element, not 0-d: the learnable fake-quant kernel indexes its scale
                s = torch.tensor([max(ranges.amax(t), 1e-8) / QMAX], dtype=torch.float32)
                self.scales[t] = torch.nn.Parameter(s) if learn else s
            self.handles.append(m.register_forward_pre_hook(self._act_hook(self.scales[t])))
            if layer.weight is not None and m not in self.parametrized:
                parametrize.register_parametrization(m, "weight", _WeightFakeQuant(_torch_axis(m, layer)))
                self.parametrized.append(m)

    def _act_hook(self, scale: Any) -> Callable[..., Any]:
        torch = lazy_import("torch")
        zp = torch.zeros(1, dtype=torch.float32 if self.learn else torch.int32)

        def hook(_m: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]
            if self.record_features:
                self.features.append(x)
            if self.learn:
                # LSQ: the scale's gradient scaled by 1/sqrt(numel * qmax) (Esser et al.)
                g = 1.0 / math.sqrt(x.numel() * QMAX)
                q = torch._fake_quantize_learnable_per_tensor_affine(x, scale, zp, QMIN_INT, QMAX_INT, g)
            else:
                q = torch.fake_quantize_per_tensor_affine(x, scale, zp, QMIN_INT, QMAX_INT)
            return (q, *args[1:])

        return hook

    def remove(self) -> None:
        """Drop the hooks and parametrizations, leaving the trained float weights in place."""
        from torch.nn.utils import parametrize

        for h in self.handles:
            h.remove()
        for m in self.parametrized:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        self.handles, self.parametrized = [], []

    def amax(self) -> dict[str, float]:
        return {t: float(abs(s.detach())) * QMAX for t, s in self.scales.items()}


def _torch_axis(module: Any, layer: Layer) -> int:
    """The per-channel (output channel) axis of the module's weight as torch stores it. Conv and
    ConvTranspose keep ONNX's layout (ConvTranspose [in, out, ...]: axis 1, as regions.WEIGHTED_OPS);
    nn.Linear is always [out, in] in torch, while its ONNX MatMul (or Gemm without transB) holds
    the transpose [in, out]: axis 0 here whatever the graph's axis."""
    torch = lazy_import("torch")
    if isinstance(module, torch.nn.Linear):
        return 0
    return layer.weight[1] if layer.weight is not None else 0


class _WeightFakeQuant(lazy_import("torch").nn.Module):  # type: ignore[misc]
    """weight -> per-channel symmetric int8 fake quantization (straight-through gradient)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, w: Any) -> Any:
        torch = lazy_import("torch")
        dims = [d for d in range(w.dim()) if d != self.axis]
        amax = w.detach().abs().amax(dim=dims)
        scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
        zp = torch.zeros(scale.shape, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zp, self.axis, QMIN_INT, QMAX_INT)


class Capture:
    """Runs a module on images and returns the outputs of `targets` (module paths) in order,
    stopping the forward once all have been produced (the post-processing is not run)."""

    def __init__(self, module: Any, targets: Sequence[str], extra_args: tuple[Any, ...]) -> None:
        mods = dict(module.named_modules())
        missing = [t for t in targets if t not in mods]
        if missing:
            raise EdgeVisionError(f"--qat: no torch module for the final layers {missing}")
        self.module, self.targets, self.extra = module, list(targets), extra_args
        self.out: dict[str, Any] = {}
        self.handles = [mods[t].register_forward_hook(self._hook(t)) for t in targets]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(_m: Any, _args: Any, out: Any) -> None:
            self.out[name] = out
            if len(self.out) == len(self.targets):
                raise _Captured

        return hook

    def __call__(self, x: Any) -> list[Any]:
        self.out = {}
        try:
            self.module(x, *self.extra)
        except _Captured:
            pass
        if len(self.out) != len(self.targets):
            raise EdgeVisionError(f"--qat: the forward did not reach {sorted(set(self.targets) - set(self.out))}")
        return [self.out[t] for t in self.targets]


def distill_loss(student: Sequence[Any], teacher: Sequence[Any]) -> Any:
    """Mean over outputs of MSE(student, teacher) / var(teacher): each head output weighs the same
    whatever its scale (box-distribution logits, class logits, mask coefficients, prototypes)."""
    total = 0.0
    for s, t in zip(student, teacher):
        total = total + ((s - t) ** 2).mean() / (t.var() + 1e-6)
    return total / max(len(student), 1)


def augment(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random view of a uint8 BGR frame: crop/zoom (30-100% of each side), horizontal flip,
    brightness / contrast / saturation / hue jitter."""
    import cv2

    h, w = frame.shape[:2]
    s = rng.uniform(0.3, 1.0)
    ch, cw = max(int(h * s * rng.uniform(0.8, 1.2)), 16), max(int(w * s * rng.uniform(0.8, 1.2)), 16)
    ch, cw = min(ch, h), min(cw, w)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = frame[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    hsv = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 180
    hsv[..., 1] *= rng.uniform(0.4, 1.6)
    hsv[..., 2] = hsv[..., 2] * rng.uniform(0.5, 1.4) + rng.uniform(-30, 30)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    return np.ascontiguousarray(out)


def mosaic(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Four uint8 BGR frames tiled 2x2 (each resized to the first's size): objects at half scale."""
    import cv2

    h, w = frames[0].shape[:2]
    tiles = [cv2.resize(f, (w, h)) for f in frames[:4]]
    return np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:4], 1)], 0)


def training_view(frames: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One augmented training frame: a 2x2 mosaic of augmented views one time in three, else one view."""
    def pick() -> np.ndarray:
        return frames[int(rng.integers(len(frames)))]

    if rng.random() < 1 / 3:
        return mosaic([augment(pick(), rng) for _ in range(4)])
    return augment(pick(), rng)


def split_held_out(frames: Sequence[np.ndarray], n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, held out): n frames spread evenly over the calibration frames are held out."""
    n = min(n, max(len(frames) - 1, 0))
    idx = {int(k * len(frames) / n + len(frames) / (2 * n)) for k in range(n)} if n else set()
    return [f for i, f in enumerate(frames) if i not in idx], [f for i, f in enumerate(frames) if i in idx]


def run_qat(
    ex: Any, manifest: Manifest, layers: Sequence[Layer], inputs: dict[str, str], final: Sequence[str],
    ranges: Ranges, frames: Sequence[np.ndarray], out_path: Path, opts: QatOptions,
    progress: Callable[[QatProgress], None] | None = None, log: Callable[[str], None] = print,
) -> QatResult:
    """_distil with torch's thread count and random state set for it, then given back as they were
    (convert runs in the user's process: QAT must not leave its settings behind)."""
    torch = lazy_import("torch")
    threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
    try:
        torch.set_num_threads(opts.threads if opts.threads > 0 else usable_cores())
        torch.manual_seed(opts.seed)
        return _distil(ex, manifest, layers, inputs, final, ranges, frames, out_path, opts, progress, log)
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng_state)


def _distil(
    ex: Any, manifest: Manifest, layers: Sequence[Layer], inputs: dict[str, str], final: Sequence[str],
    ranges: Ranges, frames: Sequence[np.ndarray], out_path: Path, opts: QatOptions,
    progress: Callable[[QatProgress], None] | None, log: Callable[[str], None],
) -> QatResult:
    """Distil ex.module (fake-quantized on `layers`) against a frozen copy of itself on `frames`,
    keep the checkpoint of least held-out loss, export it to out_path (FP32 ONNX, same names).

    layers: the ONNX layers the TensorRT graph quantizes; inputs: layer -> its activation tensor;
    final: ONNX names of the final layers whose outputs are the distillation targets; ranges:
    the calibration's (initial) activation ranges. Ctrl-C (a KeyboardInterrupt, also one raised
    from `progress`) stops training and keeps the best checkpoint so far."""
    torch = lazy_import("torch")
    from converters.export import export_graph
    from edgevision.preprocess import preprocess_batch

    rng = np.random.default_rng(opts.seed)
    train, held = split_held_out(frames, opts.held_out)
    if not train or not held:
        raise EdgeVisionError(f"--qat needs at least 2 calibration frames (got {len(frames)})")
    student = ex.module.float().eval()
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    extra = tuple(ex.example[1:])  # thresholds the wrapper takes beside the images
    targets = [module_path(student, n) or n for n in final]
    fq = FakeQuant(student, layers, inputs, ranges, opts.learn_scales)
    t_cap, s_cap = Capture(teacher, targets, extra), Capture(student, targets, extra)
    t_inputs = _input_recorder(teacher, layers) if opts.feature_weight else None
    params = [p for p in student.parameters()]
    for p in params:
        p.requires_grad_(True)
    bases = [opts.lr, opts.lr * 10]  # weights, scales: each group's rate before the warm-up scales it
    groups = [{"params": params, "lr": bases[0]}]
    if opts.learn_scales:
        groups.append({"params": list(fq.scales.values()), "lr": bases[1]})
    optim = torch.optim.Adam(groups)

    h, w = manifest.input_hw
    if opts.imgsz and opts.imgsz < max(h, w):  # same aspect, multiple of 32
        k = opts.imgsz / max(h, w)
        manifest = manifest.replace(input_hw=(max(32, round(h * k / 32) * 32), max(32, round(w * k / 32) * 32)))

    def batch_tensor(fr: Sequence[np.ndarray]) -> Any:
        return torch.from_numpy(preprocess_batch(fr, manifest)[0])

    held_x = batch_tensor(held)
    with torch.no_grad():
        held_t = t_cap(held_x)

    def held_loss() -> float:
        with torch.no_grad():
            return float(distill_loss(s_cap(held_x), held_t))

    def snapshot() -> dict[str, Any]:
        state = {k: v.detach().clone() for k, v in student.state_dict().items()}
        state.update({f"scale:{t}": s.detach().clone() for t, s in fq.scales.items()})
        return state

    before = held_loss()
    best, best_step, best_state = before, 0, snapshot()
    last_held = before
    log(f"qat: {len(train)} training frames (augmented, {manifest.input_hw[0]}x{manifest.input_hw[1]}), {len(held)} "
        f"held out; held-out loss before {before:.4f}; "
        f"up to {opts.minutes:g} min" + (f" / {opts.steps} steps" if opts.steps else ""))
    t0 = time.perf_counter()
    step, stopped = 0, "time"
    try:
        while True:
            elapsed = time.perf_counter() - t0
            if opts.steps is not None and step >= opts.steps:
                stopped = "steps"
                break
            if elapsed >= opts.minutes * 60:
                break
            step += 1
            x = batch_tensor([training_view(train, rng) for _ in range(opts.batch)])
            with torch.no_grad():
                if t_inputs is not None:
                    t_inputs.clear()
                tgt = t_cap(x)
                t_in = list(t_inputs) if t_inputs is not None else None
            fq.features, fq.record_features = [], t_in is not None
            loss = distill_loss(s_cap(x), tgt)
            if t_in is not None:
                loss = loss + opts.feature_weight * distill_loss(fq.features[:len(t_in)], t_in)
            fq.record_features = False
            optim.zero_grad(set_to_none=True)
            loss.backward()
            for g, base in zip(optim.param_groups, bases):
                g["lr"] = base * min(1.0, step / max(opts.warmup, 1))
            optim.step()
            done = step == opts.steps or time.perf_counter() - t0 >= opts.minutes * 60
            if step % opts.eval_every == 0 or done:
                last_held = held_loss()
                if last_held < best:
                    best, best_step, best_state = last_held, step, snapshot()
            if progress is not None and (step % max(1, opts.eval_every // 2) == 0 or done or step == 1):
                per = (time.perf_counter() - t0) / step
                left = opts.minutes * 60 - (time.perf_counter() - t0)
                if opts.steps is not None:
                    left = min(left, (opts.steps - step) * per)
                progress(QatProgress(step, opts.steps, float(loss.detach()), last_held, best, max(left, 0.0)))
    except KeyboardInterrupt:
        stopped = "interrupted"
        log(f"qat: interrupted at step {step}; keeping the best checkpoint (step {best_step})")
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        for t, s in fq.scales.items():
            s.copy_(best_state.pop(f"scale:{t}"))
        student.load_state_dict(best_state)
    scales = fq.amax() if opts.learn_scales else {}
    fq.remove()
    s_cap.remove()
    for p in student.parameters():
        p.requires_grad_(False)
    export_graph(ex, out_path, opts.opset)
    return QatResult(out_path, step, best_step, seconds, before, best, len(train), len(held), stopped,
                     {k: v for k, v in asdict(opts).items()}, scales)


def _input_recorder(module: Any, layers: Sequence[Layer]) -> list[Any]:
    """Forward-pre hooks recording the float inputs of `layers` (the teacher's intermediate features)."""
    mods = dict(module.named_modules())
    store: list[Any] = []
    for layer in layers:
        path = module_path(module, layer.name)
        if path is None or path not in mods:  # never the root module by default: features would misalign
            raise EdgeVisionError(f"--qat: ONNX layer {layer.name} has no torch module {path!r}")
        mods[path].register_forward_pre_hook(lambda _m, a: store.append(a[0]))
    return store


def qat_ranges(ranges: Ranges, amax: dict[str, float]) -> Ranges:
    """ranges with the learned activation amax values in place of the calibrated ones."""
    tensors = dict(ranges.tensors)
    for t, a in amax.items():
        r = tensors[t]
        tensors[t] = TensorRange(r.lo, r.hi, a)
    return Ranges(tensors, ranges.percentile, ranges.frames, {**ranges.info, "method": ranges.info.get("method", "") + " + qat-learned"})
