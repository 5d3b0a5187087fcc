"""YOLO's C2f / C3k2 / C2PSA blocks without the Split of their first convolution.

Those blocks run one 1x1 convolution `cv1` to 2c channels and split the result into two
halves. ONNX Runtime's CPU convolutions work in a channel-blocked layout (NCHWc), and Split
has no NCHWc kernel: every Split sent its tensor back to plain NCHW, and the Concat and
residual Add behind it followed (yolo11n-seg: 22 of the graph's 55 layout reorders, plus
the Splits; benchmarks/bench_split.py measures the whole network). Two convolutions of c
channels each, made from cv1's two weight halves, compute the same halves and keep every
tensor in the blocked layout. Each output channel is the same dot product as before; the
float results differ only in the last bits where ONNX Runtime picks a different kernel for
the layout its input arrives in.
"""
from __future__ import annotations

import copy
import types
from typing import Any

from edgevision._lazy import lazy_import

torch = lazy_import("torch")

# Ultralytics classes whose forward is `cv1(x).split((c, c), 1)` and then works on the halves.
SPLIT_BLOCKS = ("C2f", "C2PSA")


def conv_halves(conv: Any, c: int) -> tuple[Any, Any]:
    """A fused Ultralytics Conv (conv with bias, then its activation) to 2c channels -> two
    copies to c channels each: output channels [0, c) and [c, 2c)."""
    halves = []
    for part in (slice(0, c), slice(c, 2 * c)):
        half = copy.deepcopy(conv)
        layer = half.conv
        layer.weight = torch.nn.Parameter(conv.conv.weight[part].clone(), requires_grad=False)
        layer.bias = torch.nn.Parameter(conv.conv.bias[part].clone(), requires_grad=False)
        layer.out_channels = c
        halves.append(half)
    return halves[0], halves[1]


def c2f_forward(self: Any, x: Any) -> Any:
    """C2f.forward (and C3k2's) with cv1's halves from two convolutions."""
    y = [self.cv1a(x), self.cv1b(x)]
    y.extend(m(y[-1]) for m in self.m)
    return self.cv2(torch.cat(y, 1))


def c2psa_forward(self: Any, x: Any) -> Any:
    """C2PSA.forward with cv1's halves from two convolutions."""
    a, b = self.cv1a(x), self.cv1b(x)
    return self.cv2(torch.cat((a, self.m(b)), 1))


def unsplit(model: Any) -> int:
    """Rewrite every split block of a fused YOLO model in place; returns how many were rewritten.

    Blocks whose cv1 is not a fused conv with a bias (an unfused model) are left as they are."""
    done = 0
    for m in model.modules():
        kinds = {c.__name__ for c in type(m).__mro__}
        kind = next((k for k in SPLIT_BLOCKS if k in kinds), None)
        conv = getattr(getattr(m, "cv1", None), "conv", None)
        if kind is None or conv is None or conv.bias is None or hasattr(getattr(m, "cv1"), "bn"):
            continue
        if conv.out_channels != 2 * m.c:
            continue
        m.cv1a, m.cv1b = conv_halves(m.cv1, m.c)
        del m.cv1  # its weights now live in the halves: nothing exports or runs it twice
        m.forward = types.MethodType(c2f_forward if kind == "C2f" else c2psa_forward, m)
        done += 1
    return done
