"""Ultralytics' own path as the reference: its ONNX export, run by its own predictor.

Used by the agreement test (a subset of frames), the full-video agreement script and the
speed benchmark. Ultralytics loads its checkpoint with a full unpickle: only ever point
it at the trusted demo model.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.detections import Detections

os.environ.setdefault("YOLO_OFFLINE", "1")


def export_ultralytics_onnx(checkpoint: Path, out_dir: Path, imgsz: int = 640) -> Path:
    """Ultralytics' exporter (raw head, no NMS), into out_dir. Returns the .onnx path."""
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / checkpoint.name
    if not local.exists():
        shutil.copy(checkpoint, local)
    target = local.with_suffix(".onnx")
    if not target.exists():
        YOLO(str(local)).export(format="onnx", imgsz=imgsz, verbose=False)
    return target


def export_ultralytics_openvino(checkpoint: Path, out_dir: Path, calib_images: Path | None = None,
                                imgsz: int = 640) -> Path:
    """Ultralytics' OpenVINO export into out_dir: FP32 IR, or with calib_images (a folder of
    plain images) its INT8 export (NNCF post-training quantization on those images). Returns
    the *_openvino_model folder Ultralytics' predictor loads."""
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / checkpoint.name
    if not local.exists():
        shutil.copy(checkpoint, local)
    model = YOLO(str(local))
    if calib_images is None:
        return Path(model.export(format="openvino", imgsz=imgsz, verbose=False))
    data = out_dir / "calib.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in model.names.items())
    data.write_text(f"path: {calib_images.parent.resolve()}\ntrain: {calib_images.name}\nval: {calib_images.name}\n"
                    f"names:\n{names}\n")
    if not any(calib_images.glob("*.jpg")):
        raise FileNotFoundError(f"no calibration images in {calib_images}")
    return Path(model.export(format="openvino", int8=True, data=str(data), fraction=1.0, imgsz=imgsz, verbose=False))


def write_calib_images(frames: list[np.ndarray], folder: Path) -> Path:
    """Calibration frames (uint8[H, W, 3] BGR) as JPEGs (quality 98) in a fresh `folder`: what
    Ultralytics' INT8 export reads (export_ultralytics_openvino's calib_images). Returns folder."""
    import cv2

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 98])
    return folder


def load_predictor(onnx_path: Path, task: str = "segment") -> Any:
    from ultralytics import YOLO

    return YOLO(str(onnx_path), task=task)


def predict(model: Any, frame: np.ndarray, conf: float = 0.25, iou: float = 0.7, imgsz: int = 640) -> Detections:
    """One frame through Ultralytics' predictor -> Detections in frame pixels."""
    r = model.predict(frame, conf=conf, iou=iou, imgsz=imgsz, verbose=False)[0]
    b = r.boxes
    return Detections(b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int32), None, tuple(r.names.values()))


def both_models(work: Path) -> tuple[Path, Path]:
    """The demo checkpoint converted by edgevision (always afresh: no stale artifact) and by
    Ultralytics' exporter, under work/. Returns (edgevision .onnx, Ultralytics .onnx)."""
    from converters.export import ExportOptions, convert
    from demos.assets import demo_checkpoint

    ckpt = demo_checkpoint()
    ours = convert(ckpt, work / "edgevision", ExportOptions()).onnx_path
    return ours, export_ultralytics_onnx(ckpt, work / "ultralytics")

