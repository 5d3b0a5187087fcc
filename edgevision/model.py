"""`edgevision.load(path)`: an artifact you call on frames to get its task's results
(Detections for detect/segment, ClassMap for semantic, Classification for classify)."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import resolve
from .backends import accepted_options, onnx_backends, open_backend
from .backends.base import Backend
from .errors import EdgeVisionError, GpuPreprocessUnavailable, closest
from .manifest import IN_CONF, IN_IMAGES, IN_IOU, Manifest
from .postprocess import DecodeOptions, decode
from .preprocess import Geometry, preprocess_batch
from .results import Result


class Model:
    """A loaded artifact: detector, segmenter, semantic segmenter or classifier.

    model(frame) -> the task's result for one uint8[H, W, 3] BGR frame (Detections, ClassMap
    or Classification); model.predict(frames) runs a batch through the graph's dynamic batch
    axis. conf / iou feed the graph's threshold inputs (detectors); classes keeps only those
    class ids (or names) of a detector's results.
    """

    def __init__(
        self,
        backend: Backend,
        conf: float | None = None,
        iou: float | None = None,
        classes: Sequence[int | str] | None = None,
        masks: bool = True,
    ) -> None:
        self.backend = backend
        self.manifest: Manifest = backend.manifest
        m = self.manifest
        self.conf = float(m.conf_threshold if conf is None else conf)
        self.iou = float(m.iou_threshold if iou is None else iou)
        for label, v in (("conf", self.conf), ("iou", self.iou)):
            if not 0.0 <= v <= 1.0:
                raise EdgeVisionError(f"--{label} must be between 0 and 1, got {v}")
        # what decoding keeps: instance masks or not, and which class ids (None: all)
        self.decode_options = DecodeOptions(masks, self._class_ids(classes))
        if self.decode_options.classes is not None and not m.detects:
            raise EdgeVisionError(f"classes= filters detections; this artifact's task is {m.task}")
        # Backends that letterbox on the GPU take frames directly (TensorRT).
        self._on_gpu = backend.infer_frames if backend.takes_gpu_frames else None
        self._thresholds = {
            IN_CONF: np.array([self.conf], np.float32),
            IN_IOU: np.array([self.iou], np.float32),
        }
        self._thresholds = {k: v for k, v in self._thresholds.items() if k in backend.input_names}

    def _class_ids(self, classes: Sequence[int | str] | None) -> np.ndarray | None:
        if not classes:
            return None
        names = self.manifest.class_names
        ids = []
        for c in classes:
            if isinstance(c, str) and not c.isdigit():
                if c not in names:
                    raise EdgeVisionError(f"unknown class {c!r}{closest(c, names)}; this model has {len(names)} classes")
                ids.append(names.index(c))
            else:
                ids.append(int(c))
                if not 0 <= ids[-1] < len(names):
                    raise EdgeVisionError(f"class id {ids[-1]} is out of range: this model has classes 0..{len(names) - 1}")
        return np.asarray(sorted(set(ids)), np.int32)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.manifest.class_names

    def preprocess(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Geometry]]:
        """uint8 BGR frames -> (float32[B, 3, H, W], geometry per frame)."""
        return preprocess_batch(frames, self.manifest)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """float32[B, 3, H, W] -> raw graph outputs."""
        return self.backend.infer({IN_IMAGES: batch, **self._thresholds})

    def postprocess(self, outputs: dict[str, np.ndarray], geos: Sequence[Geometry]) -> list[Result]:
        """Raw outputs of a batch -> one result per frame, decoded by the manifest's task."""
        return [decode(outputs, i, g, self.manifest, self.decode_options) for i, g in enumerate(geos)]

    def predict_timed(self, frames: Sequence[np.ndarray]) -> tuple[list[Result], dict[str, float]]:
        """predict() plus milliseconds spent in each stage: preprocess, infer, postprocess.

        On a backend that letterboxes on the GPU (TensorRT), "infer" includes the upload and
        the letterbox kernel and "preprocess" is 0.
        """
        t0 = time.perf_counter()
        outputs = None
        if self._on_gpu is not None:
            try:
                outputs, geos = self._on_gpu(frames, dict(self._thresholds), self.manifest)
                t1 = t2 = time.perf_counter()
            except GpuPreprocessUnavailable as exc:  # raised before anything ran: use the CPU path
                logging.getLogger(__name__).warning("pre-processing on the CPU: %s", exc)
                self._on_gpu = None
        if outputs is None:
            batch, geos = self.preprocess(frames)
            t1 = time.perf_counter()
            outputs = self.infer(batch)
            t2 = time.perf_counter()
        dets = self.postprocess(outputs, geos)
        t3 = time.perf_counter()
        return dets, {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}

    def predict(self, frames: Sequence[np.ndarray]) -> list[Result]:
        return self.predict_timed(frames)[0]

    def __call__(self, frame: np.ndarray) -> Result:
        return self.predict([frame])[0]

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(path: str | Path, backend: str | None = None, **options: Any) -> Model:
    """Load a converted artifact (.onnx, or an engine with its sidecar) for inference.

    path: a file, or a convert output folder (its accepted artifact and runtime configuration
    that run fastest here, among the usable backends or the one named). backend:
    "onnxruntime", "openvino", "tensorrt"; default: the best usable one.
    options: conf, iou, classes, masks go to Model; the rest to the backend.
    """
    model_keys = {"conf", "iou", "classes", "masks"}
    model_opts = {k: v for k, v in options.items() if k in model_keys}
    backend_opts = {k: v for k, v in options.items() if k not in model_keys}
    if Path(path).is_dir():
        # Only backends that take the caller's options may be picked (threads=, device=, ...).
        candidates = [backend] if backend else [b for b in onnx_backends() if set(backend_opts) <= accepted_options(b)]
        picked = resolve(Path(path), candidates or onnx_backends())
        path, backend = picked.path, backend or picked.backend
        backend_opts = {**picked.options, **backend_opts}  # what the caller says wins
    return Model(open_backend(path, backend, **backend_opts), **model_opts)
