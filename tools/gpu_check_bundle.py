"""`make gpu-check-wheels`: prepare what a GPU machine without network needs for `make gpu-check`.

Writes the ignored folder .gpu-check/:
- cu12/: cuda-bindings 12 + cuda-pathfinder + NVRTC 12.6 wheels for the target Python
  (default CPython 3.12, x86-64 Linux): the JetPack 6 CUDA generation, run on that GPU
  beside the machine's own CUDA 13 stack;
- assets/vtest.avi: the test video (the machine has no opencv-doc);
- assets/yolo11n-seg.onnx (and, with --det, yolo11n-det.onnx for TensorRT machines): the
  converted models, verified against PyTorch here (the machine need not have ultralytics).

Everything that travels to such a machine (the working tree and this folder) must fit in
64 MiB; the total is printed and checked.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The JetPack 6 generation. cuda-bindings 12.9 finds libraries through cuda-pathfinder.
CU12 = ("cuda-bindings==12.9.*", "cuda-pathfinder>=1.1,<2", "nvidia-cuda-nvrtc-cu12==12.6.*")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux_2_12_x86_64", "manylinux1_x86_64")
LIMIT_MIB = 64.0


def download_wheels(dest: Path, python_version: str) -> list[Path]:
    """The CU12 wheels for CPython `python_version` on x86-64 Linux, without dependencies."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
           *[f"--platform={p}" for p in PLATFORMS], "-d", str(dest), *CU12]
    subprocess.run(cmd, check=True)
    return sorted(dest.glob("*.whl"))


def convert_models(assets: Path, with_det: bool) -> list[Path]:
    """yolo11n-seg (and the yolo11n detector) converted and verified on vtest frames, as the tests' fixtures do."""
    from converters.export import ExportOptions, convert
    from demos.assets import VTEST, demo_checkpoint
    from edgevision.sources import sample_frames
    from tests.assets import make_detect_checkpoint

    frames, _ = sample_frames(VTEST, 8)
    seg = demo_checkpoint()
    ckpts = [seg]
    if with_det:
        ckpts.append(make_detect_checkpoint(seg, assets / "yolo11n-det.pt"))
    out = []
    for ckpt in ckpts:
        result = convert(ckpt, assets, ExportOptions(), frames[:4])
        out.append(result.onnx_path)
    (assets / "yolo11n-det.pt").unlink(missing_ok=True)
    return out


def travelling_mib(bundle: Path) -> float:
    """MiB that a device call sends: tracked and untracked-not-ignored files, plus the bundle."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    tree = sum((ROOT / p).stat().st_size for p in listed if p and (ROOT / p).is_file())
    extra = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    return (tree + extra) / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu-check")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (3.12 on the lent H200s)")
    ap.add_argument("--det", action="store_true", help="also bring the detector (for the TensorRT tests)")
    args = ap.parse_args(argv)

    from demos.assets import VTEST

    wheels = download_wheels(args.out / "cu12", args.python_version)
    assets = args.out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    if not VTEST.is_file():
        sys.exit(f"missing {VTEST}: apt-get install opencv-doc (make test does)")
    shutil.copy(VTEST, assets / "vtest.avi")
    models = convert_models(assets, args.det)
    for p in [*wheels, assets / "vtest.avi", *models]:
        print(f"{p.stat().st_size / 2**20:7.1f} MiB  {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    total = travelling_mib(args.out)
    print(f"{total:7.1f} MiB travel with the working tree (limit {LIMIT_MIB:.0f} MiB)")
    if total > LIMIT_MIB:
        print("too large for one device call: leave out --det, or remove untracked files", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
