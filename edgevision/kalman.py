"""A constant-velocity Kalman filter over boxes as (cx, cy, aspect, h), batched over tracks.

The state is float64[8]: cx, cy, a = w / h, h and their velocities per frame. Noise scales
with the box height, so a large (near) box may move more pixels than a small one; the
weights are the ones ByteTrack (and SORT/DeepSORT before it) uses: position std h/20,
velocity std h/160. Aspect ratio gets a small fixed noise: people and cars keep their shape.

Every method takes N tracks at once (mean float64[N, 8], covariance float64[N, 8, 8]) so a
frame costs a handful of numpy calls, whatever the number of tracks.
"""
from __future__ import annotations

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160

# x_{t+1} = F x_t: each of (cx, cy, a, h) moves by its velocity once per frame.
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """float[N, 4] x1 y1 x2 y2 -> float64[N, 4] cx, cy, w / h, h (h must be > 0)."""
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """float[N, >=4] cx, cy, a, h (extra columns ignored) -> float64[N, 4] x1 y1 x2 y2."""
    s = np.asarray(xyah, np.float64).reshape(len(xyah), -1)
    w, h = s[:, 2] * s[:, 3], s[:, 3]
    return np.stack([s[:, 0] - w / 2, s[:, 1] - h / 2, s[:, 0] + w / 2, s[:, 1] + h / 2], axis=1)


def _std4(h: np.ndarray, weight: float, aspect: float) -> np.ndarray:
    """float64[N, 4] standard deviations (weight*h, weight*h, aspect, weight*h)."""
    s = np.repeat((weight * h)[:, None], 4, axis=1)
    s[:, 2] = aspect
    return s


def initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks at measurements float[N, 4] -> (mean float64[N, 8] with zero velocity,
    covariance float64[N, 8, 8] diagonal: unknown velocity gets a wide spread)."""
    z = np.asarray(xyah, np.float64).reshape(-1, 4)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    h = z[:, 3]
    std = np.concatenate([_std4(h, 2 * STD_POSITION, 1e-2), _std4(h, 10 * STD_VELOCITY, 1e-5)], axis=1)
    return mean, _diag(std**2)


def predict(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: mean F^T, F P F^T + Q, Q from each track's current height."""
    h = mean[:, 3]
    q = np.concatenate([_std4(h, STD_POSITION, 1e-2), _std4(h, STD_VELOCITY, 1e-5)], axis=1) ** 2
    mean = mean @ _F.T
    covariance = _F @ covariance @ _F.T + _diag(q)
    return mean, covariance


def update(mean: np.ndarray, covariance: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct N tracks with their measurements float[N, 4] (cx, cy, a, h).

    The measurement picks the first four state entries (H = [I 0]), so projection is slicing;
    R scales with the predicted height like the process noise.
    """
    z = np.asarray(xyah, np.float64).reshape(-1, 4)
    r = _std4(mean[:, 3], STD_POSITION, 1e-1) ** 2
    s = covariance[:, :4, :4] + _diag(r)  # innovation covariance, [N, 4, 4]
    pht = covariance[:, :, :4]  # P H^T, [N, 8, 4]
    # K = P H^T S^-1, solved rather than inverted: S is symmetric positive definite.
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # [N, 8, 4]
    innovation = z - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    covariance = covariance - gain @ s @ gain.transpose(0, 2, 1)
    return mean, covariance


def _diag(v: np.ndarray) -> np.ndarray:
    """float[N, K] -> float64[N, K, K] diagonal matrices."""
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[:, idx, idx] = v
    return out
