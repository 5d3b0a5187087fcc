"""The accuracy budget a reduced-precision artifact must hold against FP32."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edgevision.errors import EdgeVisionError

from .evaluate import Evaluation


@dataclass(frozen=True)
class Budget:
    """Minimum agreement with FP32: AP50-95, F1 at IoU 0.5, and mean mask IoU (segmenters)."""

    min_ap: float
    min_f1: float
    min_mask: float

    def failures(self, ev: Evaluation, margin: float = 0.0) -> list[str]:
        """What falls short (empty when the budget holds). margin raises every minimum (capped at 1)."""
        out = []
        for label, got, want in (("AP50-95", ev.ap50_95, self.min_ap), ("F1", ev.f1, self.min_f1)):
            if not got >= min(want + margin, 1.0):
                out.append(f"{label} {got:.4f} < {min(want + margin, 1.0):g}")
        if ev.mask_iou is not None and not math.isnan(ev.mask_iou) and ev.mask_iou < min(self.min_mask + margin, 1.0):
            out.append(f"mask IoU {ev.mask_iou:.4f} < {min(self.min_mask + margin, 1.0):g}")
        return out

    def passes(self, ev: Evaluation, margin: float = 0.0) -> bool:
        return not self.failures(ev, margin)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Defaults per precision (issue #4): INT8 AP50-95 >= 0.90 and F1 >= 0.95; FP16 0.98 / 0.99.
# Mask IoU of matched pairs: measured INT8 ~0.93 and FP16 ~0.999 on yolo11n-seg / vtest.
DEFAULT_BUDGETS: dict[str, Budget] = {
    "int8": Budget(0.90, 0.95, 0.85),
    "fp16": Budget(0.98, 0.99, 0.97),
}


def parse_budget(text: str | None, precision: str) -> Budget:
    """--max-drop 'AP,F1[,MASK]' (minimum agreement values vs FP32) -> Budget, defaults per precision."""
    base = DEFAULT_BUDGETS.get(precision, Budget(0.99, 0.995, 0.98))
    if not text:
        return base
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise EdgeVisionError(f"--max-drop wants 'AP,F1' or 'AP,F1,MASK' minimums such as 0.90,0.95; got {text!r}") from exc
    if not 2 <= len(vals) <= 3 or not all(0.0 <= v <= 1.0 for v in vals):
        raise EdgeVisionError(f"--max-drop wants 2 or 3 values between 0 and 1 (AP,F1[,MASK]); got {text!r}")
    return Budget(vals[0], vals[1], vals[2] if len(vals) == 3 else base.min_mask)
