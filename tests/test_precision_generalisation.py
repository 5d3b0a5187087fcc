"""The precision gate and scenes calibration never saw (issue 12): the report says when validation came
from the calibration clip itself, and the MSE calibration picks the range of least int8 error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.precision.calibration import split_frames
from converters.precision.report import markdown, same_clip_warning

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")  # opencv-doc, beside vtest.avi


def run_report(frames: dict) -> str:
    return markdown({"task": "segment", "artifacts": {}, "runs": [{"precision": "int8", "frames": frames}]})


def test_report_warns_when_validation_comes_from_the_calibration_clip(vtest: Path) -> None:
    if not MEGAMIND.is_file():
        pytest.skip(f"{MEGAMIND} missing (apt-get install opencv-doc)")
    same = split_frames(str(vtest), 2, None, 2).describe()
    other = split_frames(str(vtest), 2, str(MEGAMIND), 2).describe()
    assert same["val"]["held_out_of_calib"] and not other["val"]["held_out_of_calib"]
    assert "overstates" in same_clip_warning(same) and same_clip_warning(other) == ""
    assert "- **warning**: validation frames come from the calibration source itself" in run_report(same)
    assert "**warning**" not in run_report(other) and f"`{MEGAMIND}`" in run_report(other)
