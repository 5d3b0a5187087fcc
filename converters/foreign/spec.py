"""What a foreign ONNX file's raw outputs mean: a --describe YAML, or Ultralytics' metadata.

A spec names the layout of the raw outputs, the box format, the class names, the input size
and the pre-processing. Layouts (B batch, N rows or anchors, C classes, M mask coefficients):

  yolo     preds float32[B, 4+C(+M), N], boxes cxcywh (or xyxy) in input pixels, class scores
           already probabilities; segment: + protos float32[B, M, Hp, Wp]. NMS is appended.
  end2end  rows float32[B, N, 6(+M)] = x1, y1, x2, y2, score, class (+ mask coefficients), as
           Ultralytics' nms=True export and YOLO26 / YOLOv10 heads give; top-k only, no NMS.
  detr     boxes float32[B, N, 4] (cxcywh, normalised to 0..1) + logits float32[B, N, C(+1)];
           scores by sigmoid, or softmax with a no-object column; top-k only, no NMS.
  ssd      boxes float32[B, N, 4] + scores float32[B, N, C(+1)] (a background column);
           NMS is appended.

check_outputs() says in one sentence where a spec does not fit the file's outputs.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import
from edgevision.errors import EdgeVisionError, closest
from edgevision.manifest import Preprocess

LAYOUTS = ("yolo", "end2end", "detr", "ssd")
BOX_FORMATS = ("cxcywh", "xyxy")
SCORE_FNS = ("none", "sigmoid", "softmax")
BACKGROUNDS = ("none", "first", "last")
RESIZES = ("letterbox", "stretch")  # the modes a spec may name (what other exporters' users run)

# How many raw outputs each layout reads, by task.
_N_OUTPUTS = {("yolo", "detect"): 1, ("yolo", "segment"): 2, ("end2end", "detect"): 1, ("end2end", "segment"): 2,
              ("detr", "detect"): 2, ("ssd", "detect"): 2}


@dataclass(frozen=True)
class ForeignSpec:
    """How to read one foreign ONNX file.

    layout: one of LAYOUTS. task: "detect" or "segment" (yolo and end2end layouts).
    class_names: C names (None: named "0".."C-1" after the output shape).
    input_hw: (H, W) network input (None: the file's static input shape).
    box_format: "cxcywh" or "xyxy". normalized: boxes in 0..1 of the input (else input pixels).
    score_fn: what turns class outputs into probabilities ("none": they already are).
    background: the no-object / background column of detr / ssd class outputs.
    outputs: the file's output names in the layout's order (empty: the file's own order).
    origin: where the spec came from (the file's Ultralytics metadata or the YAML's path), for messages.
    ultralytics: the spec was read from an Ultralytics export's own metadata.
    """

    layout: str
    preprocess: Preprocess
    task: str = "detect"
    class_names: tuple[str, ...] | None = None
    input_hw: tuple[int, int] | None = None
    box_format: str = "cxcywh"
    normalized: bool = False
    score_fn: str = "none"
    background: str = "none"
    outputs: tuple[str, ...] = ()
    origin: str = "spec"
    ultralytics: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"{self.origin}:"
        if self.layout not in LAYOUTS:
            raise EdgeVisionError(f"{where} layout {self.layout!r} is not one of {', '.join(LAYOUTS)}"
                                  f"{closest(self.layout, LAYOUTS)}")
        if (self.layout, self.task) not in _N_OUTPUTS:
            raise EdgeVisionError(f"{where} task {self.task!r} does not go with layout {self.layout!r} (yolo and "
                                  "end2end take detect or segment; detr and ssd take detect)")
        for name, value, allowed in (("boxes", self.box_format, BOX_FORMATS), ("scores", self.score_fn, SCORE_FNS),
                                     ("background", self.background, BACKGROUNDS)):
            if value not in allowed:
                raise EdgeVisionError(f"{where} {name} {value!r} is not one of {', '.join(allowed)}")
        if self.background != "none" and self.score_fn == "sigmoid":
            raise EdgeVisionError(f"{where} a background column goes with softmax scores (or none), not sigmoid")

    @property
    def num_outputs(self) -> int:
        return _N_OUTPUTS[(self.layout, self.task)]


def _hw(value: Any, what: str) -> tuple[int, int]:
    v = [value, value] if isinstance(value, int) else list(value)
    if len(v) != 2 or not all(isinstance(x, int) and x > 0 for x in v):
        raise EdgeVisionError(f"{what} wants N or [H, W] with positive integers, got {value!r}")
    return int(v[0]), int(v[1])


def _triple(value: Any, what: str) -> tuple[float, float, float]:
    v = [value] * 3 if isinstance(value, (int, float)) else list(value)
    if len(v) != 3:
        raise EdgeVisionError(f"{what} wants one number or three, got {value!r}")
    return float(v[0]), float(v[1]), float(v[2])


SPEC_KEYS = ("layout", "task", "boxes", "normalized", "scores", "background", "classes", "classes_file",
             "input", "outputs")
INPUT_KEYS = ("size", "resize", "pad_value", "color", "scale", "mean", "std")


def load_spec(path: str | Path) -> ForeignSpec:
    """A --describe YAML file -> ForeignSpec (README: "ONNX files from other exporters")."""
    yaml = lazy_import("yaml")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EdgeVisionError(f"--describe {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise EdgeVisionError(f"--describe {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict) or "layout" not in raw:
        raise EdgeVisionError(f"--describe {path} must be a mapping with at least `layout: {' | '.join(LAYOUTS)}`")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise EdgeVisionError(f"--describe {path}: unknown key {unknown[0]!r}{closest(unknown[0], SPEC_KEYS)}; "
                              f"keys: {', '.join(SPEC_KEYS)}")
    inp = raw.get("input") or {}
    bad = sorted(set(inp) - set(INPUT_KEYS))
    if bad:
        raise EdgeVisionError(f"--describe {path}: unknown input key {bad[0]!r}{closest(bad[0], INPUT_KEYS)}; "
                              f"input keys: {', '.join(INPUT_KEYS)}")
    resize = inp.get("resize", "letterbox")
    if resize not in RESIZES:
        raise EdgeVisionError(f"--describe {path}: input resize {resize!r} is not one of {', '.join(RESIZES)}")
    color = str(inp.get("color", "RGB")).upper()
    if color not in ("RGB", "BGR"):
        raise EdgeVisionError(f"--describe {path}: input color {color!r} is not RGB or BGR")
    pre = Preprocess(resize=resize, pad_value=int(inp.get("pad_value", 114)), color=color,
                     scale=float(inp.get("scale", 1 / 255.0)), mean=_triple(inp.get("mean", 0.0), "input mean"),
                     std=_triple(inp.get("std", 1.0), "input std"))
    names = raw.get("classes")
    if raw.get("classes_file"):
        names_path = (path.parent / str(raw["classes_file"]))
        try:
            names = [n.strip() for n in names_path.read_text(encoding="utf-8").splitlines() if n.strip()]
        except OSError as exc:
            raise EdgeVisionError(f"--describe {path}: classes_file {names_path}: {exc.strerror}") from exc
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    outputs = raw.get("outputs") or ()
    return ForeignSpec(
        layout=str(raw["layout"]), preprocess=pre, task=str(raw.get("task", "detect")),
        class_names=tuple(str(n) for n in names) if names else None,
        input_hw=_hw(inp["size"], f"--describe {path}: input size") if "size" in inp else None,
        box_format=str(raw.get("boxes", "xyxy" if raw["layout"] in ("end2end", "ssd") else "cxcywh")),
        normalized=bool(raw.get("normalized", raw["layout"] == "detr")),
        score_fn=str(raw.get("scores", "none")), background=str(raw.get("background", "none")),
        outputs=tuple(str(o) for o in ([outputs] if isinstance(outputs, str) else outputs)), origin=f"--describe {path}",
    )


# Ultralytics' letterbox: pad 114, RGB, /255 (as converters/families/ultralytics.yolo_manifest).
ULTRALYTICS_PRE = Preprocess(resize="letterbox", pad_value=114, color="RGB", scale=1 / 255.0)


def ultralytics_spec(meta: dict[str, str], path: Path) -> ForeignSpec | None:
    """The spec an Ultralytics ONNX export carries in its metadata_props (names, imgsz, task,
    end2end, args.nms); None where the file is not Ultralytics'."""
    if meta.get("author") != "Ultralytics" or "names" not in meta:
        return None
    task = meta.get("task", "detect")
    if task not in ("detect", "segment"):
        raise EdgeVisionError(f"{path} is an Ultralytics {task} export; edgevision converts Ultralytics' detect "
                              "and segment ONNX files (convert the .pt checkpoint for other tasks)")
    try:
        names = ast.literal_eval(meta["names"])
        imgsz = ast.literal_eval(meta.get("imgsz", "None"))
        args = ast.literal_eval(meta.get("args", "{}"))
    except (ValueError, SyntaxError) as exc:
        raise EdgeVisionError(f"{path}: its Ultralytics metadata cannot be read ({exc})") from exc
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    end2end = meta.get("end2end") == "True" or bool(isinstance(args, dict) and args.get("nms"))
    return ForeignSpec(
        layout="end2end" if end2end else "yolo", preprocess=ULTRALYTICS_PRE, task=task,
        class_names=tuple(str(n) for n in names), input_hw=_hw(imgsz, f"{path}: imgsz") if imgsz else None,
        box_format="xyxy" if end2end else "cxcywh", origin=f"{path.name} (Ultralytics metadata)", ultralytics=True,
        extra={"stride": int(meta.get("stride", 32)), "ultralytics_version": meta.get("version", "")},
    )


@dataclass(frozen=True)
class Fitted:
    """A spec checked against a file: the raw output names in layout order, C, M, N and (H, W)."""

    outputs: tuple[str, ...]
    num_classes: int
    num_masks: int
    rows: int | None
    input_hw: tuple[int, int]
    dims: dict[str, list[int | None]] = field(default_factory=dict)  # the raw outputs' shapes


def check_outputs(spec: ForeignSpec, outputs: dict[str, list[int | None]], input_shape: list[int | None],
                  path: Path) -> Fitted:
    """Fit the spec to the file's outputs (name -> dims, None where symbolic) and its image input.
    Raises EdgeVisionError, one sentence, where the spec does not fit."""
    have = ", ".join(f"{n} {_dims(d)}" for n, d in outputs.items())
    why = f"{path.name} does not fit {spec.origin} (layout {spec.layout}, {spec.task})"
    if spec.outputs:
        missing = [o for o in spec.outputs if o not in outputs]
        if missing:
            raise EdgeVisionError(f"{why}: it has no output {missing[0]!r}{closest(missing[0], list(outputs))}; "
                                  f"its outputs: {have}")
        names = spec.outputs
    else:
        names = tuple(outputs)[: spec.num_outputs]
    if len(names) != spec.num_outputs:
        raise EdgeVisionError(f"{why}: the layout reads {spec.num_outputs} output(s), the file has {len(outputs)} "
                              f"({have})")
    dims = [outputs[n] for n in names]
    hw = spec.input_hw or static_hw(input_shape)
    if hw is None:
        raise EdgeVisionError(f"{path.name} has a dynamic input size {_dims(input_shape)}: give `input: size: [H, W]` "
                              "in --describe")
    if len(input_shape) != 4 or input_shape[1] not in (3, None):
        raise EdgeVisionError(f"{path.name}'s image input is {_dims(input_shape)}; edgevision feeds [B, 3, H, W]")
    fixed = static_hw(input_shape)
    if fixed is not None and fixed != hw:
        raise EdgeVisionError(f"{why}: the spec's input size {hw[0]}x{hw[1]} is not the file's {fixed[0]}x{fixed[1]}")
    nc = len(spec.class_names) if spec.class_names else None
    first = dims[0]
    if spec.layout == "yolo":
        if len(first) != 3:
            raise EdgeVisionError(f"{why}: yolo wants preds [B, 4+C(+M), N], {names[0]} is {_dims(first)}")
        nm = 0
        if spec.task == "segment":
            if len(dims[1]) != 4 or dims[1][1] is None:
                raise EdgeVisionError(f"{why}: segment wants protos [B, M, Hp, Wp], {names[1]} is {_dims(dims[1])}")
            nm = int(dims[1][1])
        width = first[1]
        if width is None:
            raise EdgeVisionError(f"{why}: {names[0]} {_dims(first)} has a symbolic channel axis")
        if nc is None and first[2] is not None and width > first[2]:
            # More channels than anchors: a YOLO head never has that; the file is [B, N, 4+C].
            raise EdgeVisionError(f"{why}: {names[0]} {_dims(first)} has {width} channels and {first[2]} anchors; "
                                  "is it [B, N, 4+C] rather than [B, 4+C, N]?")
        nc = nc if nc is not None else width - 4 - nm
        if width != 4 + nc + nm:
            raise EdgeVisionError(f"{why}: {names[0]} {_dims(first)} has {width} channels, the spec says "
                                  f"4 + {nc} classes + {nm} mask coefficients = {4 + nc + nm}"
                                  + (" (is it [B, N, 4+C] rather than [B, 4+C, N]?)" if first[2] == 4 + nc + nm else ""))
        return Fitted(names, nc, nm, first[2], hw, {n: outputs[n] for n in names})
    if spec.layout == "end2end":
        nm = int(dims[1][1]) if spec.task == "segment" and len(dims[1]) == 4 and dims[1][1] else 0
        if spec.task == "segment" and len(dims[1]) != 4:
            raise EdgeVisionError(f"{why}: segment wants protos [B, M, Hp, Wp], {names[1]} is {_dims(dims[1])}")
        if len(first) != 3 or first[2] != 6 + nm:
            raise EdgeVisionError(f"{why}: end2end wants rows [B, N, {6 + nm}] (x1, y1, x2, y2, score, class"
                                  f"{' + M coefficients' if nm else ''}), {names[0]} is {_dims(first)}")
        if nc is None:
            raise EdgeVisionError(f"{why}: an end2end output does not say how many classes there are; list them "
                                  "under `classes:`")
        return Fitted(names, nc, nm, first[1], hw, {n: outputs[n] for n in names})
    boxes, cls = dims
    if len(boxes) != 3 or boxes[2] != 4 or len(cls) != 3 or cls[2] is None:
        raise EdgeVisionError(f"{why}: {spec.layout} wants boxes [B, N, 4] and class outputs [B, N, C(+1)]; the "
                              f"file gives {names[0]} {_dims(boxes)}, {names[1]} {_dims(cls)}")
    columns = int(cls[2]) - (spec.background != "none")
    nc = nc if nc is not None else columns
    if columns != nc:
        bg = " + 1 background" if spec.background != "none" else ""
        raise EdgeVisionError(f"{why}: {names[1]} {_dims(cls)} has {cls[2]} class columns, the spec says "
                              f"{nc} classes{bg}")
    if boxes[1] is not None and cls[1] is not None and boxes[1] != cls[1]:
        raise EdgeVisionError(f"{why}: {names[0]} has {boxes[1]} rows and {names[1]} {cls[1]}")
    return Fitted(names, nc, 0, boxes[1], hw, {n: outputs[n] for n in names})


def static_hw(shape: list[int | None]) -> tuple[int, int] | None:
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return int(shape[2]), int(shape[3])
    return None


def _dims(d: list[int | None]) -> str:
    return "[" + ", ".join("?" if v is None else str(v) for v in d) + "]"

