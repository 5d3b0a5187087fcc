"""What a gated artifact is on disk, and what checking, stamping, renaming and removing it means.

An ONNX variant is one file and runs on every CPU configuration the gate knows (ONNX Runtime,
OpenVINO f32 / bf16). An OpenVINO IR (the NNCF engine's int8-ov) is two files, an .xml graph and
its .bin weights found by name, carries its manifest in rt_info, and runs on OpenVINO only. The
gate pipeline (pipeline.finish) asks the kind instead of testing suffixes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevision._lazy import lazy_import
from edgevision.manifest import METADATA_KEY, Manifest


@dataclass(frozen=True)
class ArtifactKind:
    """suffix: the graph file's suffix. portable: gated and timed on every CPU configuration
    (False: only on the one it was made for)."""

    suffix: str
    portable: bool

    def check(self, path: Path) -> None:
        """Raise EdgeVisionError where the file is not a valid graph of its kind."""
        if self.portable:
            from converters.onnx_io import check_model

            check_model(path)
        # An IR was written by OpenVINO itself; stamping reads it back, which is its check.

    def stamp(self, path: Path, manifest: Manifest) -> None:
        """Store `manifest` where edgevision.load reads it for this kind (ONNX metadata_props, IR rt_info)."""
        if self.portable:
            from converters.onnx_io import write_manifest

            write_manifest(path, manifest)
        else:
            self._stamp_ir(path, manifest)

    def _stamp_ir(self, xml: Path, manifest: Manifest) -> None:
        """The manifest goes where OpenVINO keeps an ONNX file's metadata (rt_info["framework"]),
        which is where edgevision's OpenVINO backend reads it from: the IR carries it like the ONNX
        files do. Saved beside and renamed over, so a failure leaves the old IR whole."""
        ov = lazy_import("openvino")
        model: Any = ov.Core().read_model(str(xml))
        model.set_rt_info(manifest.to_json(), ["framework", METADATA_KEY])
        tmp = xml.with_name(xml.stem + ".stamp.xml")
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        self.move(tmp, xml)

    def move(self, src: Path, dst: Path) -> None:
        """Rename the artifact: every file it is made of."""
        for a, b in zip(self.files(src), self.files(dst)):
            a.replace(b)

    def remove(self, path: Path) -> None:
        for p in self.files(path):
            p.unlink(missing_ok=True)

    def files(self, path: Path) -> tuple[Path, ...]:
        return (path,) if self.portable else (path, path.with_suffix(".bin"))


ONNX = ArtifactKind(".onnx", portable=True)
OPENVINO_IR = ArtifactKind(".xml", portable=False)


def kind_of(path: Path) -> ArtifactKind:
    """The kind of an artifact path by its suffix (.xml: an OpenVINO IR; anything else ONNX)."""
    return OPENVINO_IR if path.suffix == OPENVINO_IR.suffix else ONNX
