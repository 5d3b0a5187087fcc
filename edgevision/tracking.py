"""ByteTrack-style multi-object tracking: track ids for the Detections of successive frames.

ByteTrack (Zhang et al., ECCV 2022, arXiv:2110.06864) associates *every* detection box, not
only the confident ones: high-score boxes first, then the low-score boxes (often occluded
people) to the tracks still unmatched, so a track survives a dip in its detector score.
Per frame, with a constant-velocity Kalman filter (edgevision.kalman) predicting each track:

1. confirmed tracks (tracked and lost) <- high-score boxes, IoU cost fused with the score,
   accepted up to `match_thresh`; a matched lost track is found again with its old id;
2. tracks still unmatched that were tracked last frame <- low-score boxes, plain IoU, cost
   <= 0.5; tracked ones left over become lost;
3. unconfirmed tracks (born last frame) <- the high-score boxes left, cost <= 0.7; those
   not matched are dropped (one-frame flickers never get an id);
4. high-score boxes left with score >= `new_track_thresh` start unconfirmed tracks (confirmed
   at once on the tracker's first frame);
5. lost tracks unseen for more than `track_buffer * frame_rate / 30` frames are removed, and a
   tracked/lost pair overlapping by IoU > 0.85 keeps only the older one.

The constants are ByteTrack's; the score thresholds default to Ultralytics' bytetrack.yaml
(0.25 / 0.1 / 0.25), which suit YOLO's score scale (ByteTrack's paper tunes 0.6 / 0.1 / 0.7
for YOLOX on MOT17). Like ByteTrack the association ignores classes (`class_aware=True` forbids
matches across classes). Boxes are `xyxy` for every task, so an OBB is tracked by its
axis-aligned bounds. Ids are given when a track is confirmed, so they count up without gaps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import kalman
from ._lazy import lazy_import
from .detections import Detections
from .metrics import box_iou

_DEDUP_IOU_DISTANCE = 0.15  # ByteTrack's remove_duplicate_stracks threshold
_LOW_MATCH = 0.5  # second association: max IoU distance for low-score boxes
_UNCONFIRMED_MATCH = 0.7  # third association: max (fused) distance for tracks born last frame


@dataclass
class _Tracks:
    """All live tracks as parallel arrays (one row per track), so each stage is a few numpy calls."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))  # float64[T, 8]
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 8, 8)))  # float64[T, 8, 8]
    track_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 0 until confirmed
    tracked: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # False: lost
    last_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # last frame matched
    start_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.track_id)

    def keep(self, mask: np.ndarray) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name)[mask])

    def append(self, other: _Tracks) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def boxes(self) -> np.ndarray:
        """float32[T, 4] xyxy of the current state means."""
        return kalman.xyah_to_xyxy(self.mean).astype(np.float32)


class ByteTracker:
    """Track ids for one video stream (one tracker per source: it keeps the stream's state).

    frame_rate: frames per second of the stream; the lost buffer is `track_buffer` frames at
      30 fps, i.e. `track_buffer / 30` seconds whatever the rate.
    high_thresh: detections at or above it take part in the first association and may start
      tracks; low_thresh < score < high_thresh only recover existing tracks (stage 2). Give the
      model a confidence threshold <= low_thresh (the CLI's --track uses 0.1) or stage 2 sees nothing.
    new_track_thresh: minimum score to start a track. match_thresh: maximum fused IoU distance
      (1 - IoU * score) of a first-stage match.
    class_aware: forbid matching a track to a box of another class (ByteTrack does not).

    `update(dets)` takes a frame's Detections in frame order and returns the detections that
    belong to a confirmed track, in their input order (filtered, never re-ordered, boxes as
    detected rather than Kalman-smoothed), with `tracker_id` int64[K] set. Detections that match
    no confirmed track (unmatched low-score boxes, a track's first frame) are left out.
    """

    def __init__(
        self,
        frame_rate: float = 30,
        track_buffer: int = 30,
        high_thresh: float = 0.25,
        low_thresh: float = 0.1,
        new_track_thresh: float = 0.25,
        match_thresh: float = 0.8,
        fuse_score: bool = True,
        class_aware: bool = False,
    ) -> None:
        self.frame_rate = float(frame_rate) if frame_rate and frame_rate > 0 else 30.0
        self.max_lost = max(1, int(round(self.frame_rate / 30.0 * track_buffer)))
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_thresh = match_thresh
        self.fuse_score = fuse_score
        self.class_aware = class_aware
        # imported now, so a missing scipy is a clear error when tracking is asked for, not mid-run
        self._assign = lazy_import("scipy.optimize").linear_sum_assignment
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new stream, or the same one after a cut)."""
        self.tracks = _Tracks()
        self.frame = 0
        self._next_id = 1

    # -- one frame -------------------------------------------------------------------------
    def update(self, dets: Detections) -> Detections:
        """Associate a frame's detections with the tracks; see the class docstring for the result."""
        self.frame += 1
        t = self.tracks
        xyxy = dets.xyxy
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # a zero height has no aspect
        score = dets.confidence
        high = np.flatnonzero(valid & (score >= self.high_thresh))
        low = np.flatnonzero(valid & (score > self.low_thresh) & (score < self.high_thresh))
        det_of_track = np.full(len(t), -1, np.int64)  # detection index each track took this frame

        confirmed = t.track_id > 0
        pool = np.flatnonzero(confirmed)
        if len(pool):
            # a lost track coasts: its height stops changing (ByteTrack zeroes that velocity)
            t.mean[pool[~t.tracked[pool]], 7] = 0
            t.mean[pool], t.cov[pool] = kalman.predict(t.mean[pool], t.cov[pool])

        # 1. confirmed tracks <- high-score boxes
        rows, cols = self._associate(pool, high, dets, self.match_thresh, self.fuse_score)
        self._apply(pool[rows], high[cols], dets, det_of_track)
        left_tracks = np.setdiff1d(pool, pool[rows])
        left_high = np.setdiff1d(high, high[cols])

        # 2. tracks tracked last frame, still unmatched <- low-score boxes
        recent = left_tracks[t.tracked[left_tracks]]
        rows, cols = self._associate(recent, low, dets, _LOW_MATCH, fuse=False)
        self._apply(recent[rows], low[cols], dets, det_of_track)
        t.tracked[np.setdiff1d(recent, recent[rows])] = False

        # 3. tracks born last frame <- high-score boxes left; unmatched ones die
        unconfirmed = np.flatnonzero(~confirmed)
        rows, cols = self._associate(unconfirmed, left_high, dets, _UNCONFIRMED_MATCH, self.fuse_score)
        self._apply(unconfirmed[rows], left_high[cols], dets, det_of_track)
        for i in unconfirmed[rows]:
            t.track_id[i] = self._new_id()
        alive = np.ones(len(t), bool)
        alive[np.setdiff1d(unconfirmed, unconfirmed[rows])] = False
        left_high = np.setdiff1d(left_high, left_high[cols])

        # 5a. lost for too long
        alive &= t.tracked | (self.frame - t.last_frame <= self.max_lost)
        t.keep(alive)
        det_of_track = det_of_track[alive]

        # 4. new tracks from confident boxes nobody took
        born = left_high[score[left_high] >= self.new_track_thresh]
        if len(born):
            mean, cov = kalman.initiate(kalman.xyxy_to_xyah(xyxy[born]))
            n = len(born)
            ids = np.array([self._new_id() for _ in range(n)] if self.frame == 1 else np.zeros(n), np.int64)
            frame = np.full(n, self.frame, np.int64)
            t.append(_Tracks(mean, cov, ids, np.ones(n, bool), frame, frame.copy(), dets.class_id[born]))
            det_of_track = np.concatenate([det_of_track, born])

        # 5b. a tracked track and a lost one on the same spot: keep the older
        det_of_track = det_of_track[self._dedup()]

        out = np.sort(det_of_track[(det_of_track >= 0) & (self.tracks.track_id > 0) & self.tracks.tracked])
        id_of_det = {int(d): int(i) for d, i in zip(det_of_track, self.tracks.track_id) if d >= 0}
        result = dets[out]
        result.tracker_id = np.array([id_of_det[int(d)] for d in out], np.int64)
        return result

    # -- helpers ---------------------------------------------------------------------------
    def _associate(self, tracks: np.ndarray, boxes: np.ndarray, dets: Detections, thresh: float,
                   fuse: bool) -> tuple[np.ndarray, np.ndarray]:
        """Optimal one-to-one matches (rows into `tracks`, cols into `boxes`) with cost <= thresh.

        Cost: 1 - IoU (times the detection score when `fuse`, as ByteTrack does for confident
        boxes). Leaving a pair unmatched costs `thresh`, so the assignment only takes a match
        that beats leaving both sides alone (the semantics of lapjv's cost_limit, which ByteTrack
        uses, solved here with scipy's linear_sum_assignment on the padded square problem).
        """
        empty = np.zeros(0, np.int64)
        if len(tracks) == 0 or len(boxes) == 0:
            return empty, empty
        sim = box_iou(self.tracks.boxes()[tracks], dets.xyxy[boxes]).astype(np.float64)
        if fuse:
            sim = sim * dets.confidence[boxes][None, :]
        cost = 1.0 - sim
        if self.class_aware:
            cost[self.tracks.class_id[tracks][:, None] != dets.class_id[boxes][None, :]] = np.inf
        n, m = cost.shape
        big = 1e6  # an impossible pairing: dearer than leaving everything unmatched
        square = np.full((n + m, n + m), big)
        square[:n, :m] = np.where(cost <= thresh, cost, big)
        square[np.arange(n), m + np.arange(n)] = thresh / 2  # track i unmatched
        square[n + np.arange(m), np.arange(m)] = thresh / 2  # box j unmatched
        square[n:, m:] = 0
        r, c = self._assign(square)
        hit = (r < n) & (c < m)
        r, c = r[hit], c[hit]
        ok = cost[r, c] <= thresh
        return r[ok].astype(np.int64), c[ok].astype(np.int64)

    def _apply(self, tracks: np.ndarray, boxes: np.ndarray, dets: Detections, det_of_track: np.ndarray) -> None:
        """Kalman-correct matched tracks with their boxes; they are tracked as of this frame."""
        if len(tracks) == 0:
            return
        t = self.tracks
        t.mean[tracks], t.cov[tracks] = kalman.update(t.mean[tracks], t.cov[tracks],
                                                      kalman.xyxy_to_xyah(dets.xyxy[boxes]))
        t.tracked[tracks] = True
        t.last_frame[tracks] = self.frame
        t.class_id[tracks] = dets.class_id[boxes]
        det_of_track[tracks] = boxes

    def _dedup(self) -> np.ndarray:
        """Drop the younger of each tracked/lost pair with IoU distance < 0.15 (of one class when
        class-aware); returns the kept mask."""
        t = self.tracks
        keep = np.ones(len(t), bool)
        on, lost = np.flatnonzero(t.tracked), np.flatnonzero(~t.tracked)
        if len(on) and len(lost):
            near = 1.0 - box_iou(t.boxes()[on], t.boxes()[lost]) < _DEDUP_IOU_DISTANCE
            if self.class_aware:  # a car and a truck on one spot are not duplicates then
                near &= t.class_id[on][:, None] == t.class_id[lost][None, :]
            close = np.argwhere(near)
            for p, q in close:
                a, b = on[p], lost[q]
                if t.last_frame[a] - t.start_frame[a] > t.last_frame[b] - t.start_frame[b]:
                    keep[b] = False
                else:
                    keep[a] = False
            t.keep(keep)
        return keep

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1
