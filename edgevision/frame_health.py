"""Frozen and black pictures in a live stream, told from the frames themselves.

A camera or encoder that hangs often keeps sending the same picture (a frozen tile), and one
that loses its sensor or an interrupted stream often sends black: the stream is "up" but shows
nothing. FrameHealth watches the frames and says when either has lasted long enough.

Episodes: FROZEN once when identical frames have lasted `freeze_s`, BLACK once when black
frames have lasted `black_s`; when the picture changes again (moves, or is no longer black)
one RESTORED ends the episode, its detail saying which episode ended and how long it lasted,
so an app can clear the warning it raised. A black picture is reported as BLACK only (it is
also a repeated picture, but "black" is the more useful diagnosis).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .health import EventKind


@dataclass
class FrameHealth:
    """Feed every frame to `check()`; it returns the events that frame starts or ends.

    freeze_s / black_s: seconds before an episode is reported (None: not watched).
    black_level: a frame whose mean (0..255, over the sample) is below this is black.
    stride: the comparison looks at every stride-th pixel in each direction (a 768x576
    frame -> 96x72 samples): cheap, and a frozen decoder repeats the frame bit for bit.
    """

    freeze_s: float | None = 10.0
    black_s: float | None = 5.0
    black_level: float = 10.0
    stride: int = 8
    _last: np.ndarray | None = field(default=None, repr=False)
    _same_since: float = 0.0
    _black_since: float | None = None
    _frozen: bool = False
    _black: bool = False

    def reset(self) -> None:
        """Forget the past (a new connection starts a new picture)."""
        self._last, self._black_since, self._frozen, self._black = None, None, False, False

    def check(self, image: np.ndarray, t: float) -> list[tuple[EventKind, str]]:
        """image: uint8[H, W, C] (or [H, W]); t: the frame's time in seconds (monotonic)."""
        events: list[tuple[EventKind, str]] = []
        sample = image[:: self.stride, :: self.stride]
        is_black = float(sample.mean()) < self.black_level
        # black first: a black picture is BLACK, not FROZEN
        if is_black:
            if self._black_since is None:
                self._black_since = t
            if not self._black and self.black_s is not None and t - self._black_since >= self.black_s:
                self._black = True
                events.append((EventKind.BLACK, f"black frames for {t - self._black_since:.1f} s"))
        else:
            if self._black:
                events.append((EventKind.RESTORED, f"picture again after black for {t - (self._black_since or t):.1f} s"))
            self._black, self._black_since = False, None
        same = self._last is not None and self._last.shape == sample.shape and np.array_equal(self._last, sample)
        if same:
            if (not self._frozen and not is_black and self.freeze_s is not None
                    and t - self._same_since >= self.freeze_s):
                self._frozen = True
                events.append((EventKind.FROZEN, f"identical frames for {t - self._same_since:.1f} s"))
        else:
            if self._frozen:
                events.append((EventKind.RESTORED, f"picture moves again after frozen for {t - self._same_since:.1f} s"))
            self._frozen, self._same_since = False, t
            self._last = np.array(sample)  # a copy: the caller may reuse the frame's buffer
        return events
