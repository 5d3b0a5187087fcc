"""`make gpu-check`: everything a GPU machine can prove about edgevision, in one call.

On a machine with an NVIDIA GPU it runs every `gpu`-marked test (CUDA kernels against their
numpy twins on real frames and edge cases, the cuda-python wrappers, the GPU letterbox
feeding the CPU pipeline and, where TensorRT imports, engines built and compared with ONNX
Runtime) once per CUDA stack found:

- `system`: the interpreter's own cuda-bindings and NVRTC (13 on a desktop driver, 12 on JetPack 6);
- one more per folder of wheels in the bundle (`make gpu-check-wheels` puts cuda-bindings 12 and
  NVRTC 12.6 in `.gpu-check/cu12/`): installed into a private folder and put first on
  PYTHONPATH, so the JetPack 6 generation runs on the same GPU.

It writes the full log, one JUnit XML per stack and a Markdown report under GPU_CHECK_OUT
(default runs/gpu-check/) and prints a table last. Without a GPU it prints one line and
exits 0 (`make test` runs that dry run). Exit 1 when any test fails or a stack cannot run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".gpu-check"  # what make gpu-check-wheels prepares (ignored by git)
DEADLINE_S = 420  # all stacks together: the report is written well inside a 10-minute device call


@dataclass(frozen=True)
class Stack:
    """A CUDA Python stack to run the tests under. wheels: installed into a private folder
    first; () means the interpreter's own packages."""

    name: str
    wheels: tuple[Path, ...] = ()


@dataclass(frozen=True)
class CaseResult:
    """One test of one stack. outcome: passed, failed, error or skipped; message: why (first line)."""

    stack: str
    test: str
    outcome: str
    seconds: float
    message: str = ""
    properties: tuple[tuple[str, str], ...] = ()


def find_stacks(bundle: Path) -> list[Stack]:
    """`system`, then one stack per sub-folder of the bundle that holds wheels (sorted)."""
    stacks = [Stack("system")]
    if bundle.is_dir():
        for folder in sorted(p for p in bundle.iterdir() if p.is_dir()):
            wheels = tuple(sorted(folder.glob("*.whl")))
            if wheels:
                stacks.append(Stack(folder.name, wheels))
    return stacks


def gpu_test_files(tests: Path = ROOT / "tests") -> list[str]:
    """The test modules that hold gpu-marked tests. Only these are collected: another module's
    import of something the GPU machine lacks (onnx, ultralytics) must not stop the run."""
    return sorted(str(p.relative_to(ROOT)) for p in tests.glob("test_*.py") if "mark.gpu" in p.read_text())


def pytest_command(python: str, junit: Path) -> list[str]:
    """Every gpu-marked test; gpu("tensorrt") ones skip themselves, with the reason, without TensorRT."""
    return [python, "-m", "pytest", "-m", "gpu", "-q", "-rA", "-s", "-p", "no:cacheprovider",
            "-o", "junit_logging=no", f"--junitxml={junit}", *gpu_test_files()]


def stack_problems(stack: str, results: list[CaseResult], returncode: int | None) -> list[str]:
    """Why a stack's run proves less than it claims ([] when it ran as named): pytest stopped,
    nothing passed, a test found no GPU in that process, or the CUDA generation in use is not
    the one the stack is named for (cu12 must run cuda-bindings 12 and NVRTC 12)."""
    problems = []
    if returncode not in (0, 1):
        problems.append(f"pytest exited {returncode} (collection or usage error; see gpu-check.log)")
    if not any(r.outcome == "passed" for r in results):
        problems.append("no test passed")
    blind = [r for r in results if r.outcome == "skipped" and r.message.startswith("gpu test:")
             and "TensorRT not available" not in r.message]
    if blind:
        problems.append(f"{len(blind)} test(s) saw no GPU in this process: {blind[0].message}")
    if stack.startswith("cu") and stack[2:].isdigit():
        used = next((dict(r.properties) for r in results if r.test.endswith("test_cuda_stack_in_use")), {})
        for what in ("cuda_bindings", "nvrtc"):
            if not str(used.get(what, "")).startswith(stack[2:] + "."):
                problems.append(f"{what} in use is {used.get(what, 'unknown')}, not CUDA {stack[2:]}")
    return problems


def stack_env(base: dict[str, str], site: Path | None, bundle: Path) -> dict[str, str]:
    """The environment of one stack's run: its private site first on PYTHONPATH, and the
    bundle's video and converted models where the tests look for them."""
    env = dict(base)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("YOLO_OFFLINE", "1")
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [base.get("PYTHONPATH", "")])])
    assets = bundle / "assets"
    if (assets / "vtest.avi").is_file():
        env.setdefault("EDGEVISION_VTEST", str(assets / "vtest.avi"))
    if any(assets.glob("*.onnx")):
        env.setdefault("EDGEVISION_TEST_ARTIFACTS", str(assets))
    return env


def read_junit(path: Path, stack: str) -> list[CaseResult]:
    """The test cases of a pytest JUnit XML file, in file order."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        module = (case.get("classname") or "").rsplit(".", 1)[-1]
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                text = (node.get("message") or node.text or "").strip()
                message = text.splitlines()[0][:160] if text else ""
                break
        props = tuple((p.get("name", ""), p.get("value", "")) for p in case.iter("property"))
        results.append(CaseResult(stack, f"{module}::{case.get('name')}", outcome, float(case.get("time") or 0), message,
                                  props))
    return results


def table(results: list[CaseResult]) -> str:
    """A Markdown table: stack, test, result (with the reason for skips and failures), seconds."""
    lines = ["| stack | test | result | time |", "|---|---|---|---|"]
    for r in results:
        shown = r.outcome if not r.message or r.outcome == "passed" else f"{r.outcome}: {r.message}"
        cells = [r.stack, r.test, shown, f"{r.seconds:.2f} s"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def totals(results: list[CaseResult]) -> dict[str, int]:
    out = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    for r in results:
        out[r.outcome] = out.get(r.outcome, 0) + 1
    return out


PROBE = r"""
import json, platform, sys
info = {"python": platform.python_version()}
try:
    import cuda.bindings as b; info["cuda-bindings"] = b.__version__
except Exception as e: info["cuda-bindings"] = f"missing ({e})"
from edgevision.device import gpu_status
s = gpu_status(); info["gpu"] = f"{s.name} (sm_{s.compute_capability[0]}{s.compute_capability[1]})" if s.available else s.reason
try:
    from cuda.bindings import runtime as rt; info["driver"] = "CUDA %d.%d" % divmod(rt.cudaDriverGetVersion()[1] // 10, 100)
except Exception as e: info["driver"] = f"unknown ({e})"
try:
    from edgevision.kernels.nvrtc import nvrtc_version; info["nvrtc"] = "%d.%d" % nvrtc_version()
except Exception as e: info["nvrtc"] = f"unusable ({e})"
try:
    from edgevision.backends.tensorrt.target import find_flavor; info["tensorrt"] = find_flavor()[0].label
except Exception as e: info["tensorrt"] = f"not available ({str(e)[:120]})"
for m in ("numpy", "onnxruntime", "cv2"):
    try: info[m] = __import__(m).__version__
    except Exception as e: info[m] = f"missing ({e})"
print("PROBE " + json.dumps(info))
"""


def probe(python: str, env: dict[str, str]) -> dict[str, str]:
    try:
        run = subprocess.run([python, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"error": "the probe ran past 120 s"}
    for line in run.stdout.splitlines():
        if line.startswith("PROBE "):
            return dict(json.loads(line[6:]))
    return {"error": (run.stderr or run.stdout).strip()[-300:]}


def install(stack: Stack, python: str, into: Path, log: list[str]) -> str:
    """Install the stack's wheels into `into` (no index, no dependencies); '' or why it failed."""
    cmd = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--disable-pip-version-check",
           "--target", str(into), *map(str, stack.wheels)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return "pip ran past 180 s"
    log.append(f"$ {' '.join(cmd)}\n{run.stdout}{run.stderr}")
    return "" if run.returncode == 0 else (run.stderr.strip().splitlines() or ["pip failed"])[-1]


def has_gpu_hardware() -> bool:
    """An NVIDIA device node or nvidia-smi: a GPU may be here even when CUDA cannot reach it."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("GPU_CHECK_OUT") or ROOT / "runs" / "gpu-check"))
    ap.add_argument("--bundle", type=Path, default=BUNDLE)
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose packages form the system stack")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from edgevision.device import gpu_status

    status = gpu_status()
    if not status.available:
        if has_gpu_hardware():
            print(f"gpu-check: an NVIDIA GPU seems present but CUDA cannot use it: {status.reason}")
            return 1
        print(f"gpu-check: no GPU here ({status.reason}); nothing to run")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    gpu = f"{status.name} (sm_{status.compute_capability[0]}{status.compute_capability[1]})"
    log: list[str] = [f"gpu-check on {gpu}"]
    results: list[CaseResult] = []
    envs: dict[str, dict[str, str]] = {}
    broken: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for stack in find_stacks(args.bundle):
            left = DEADLINE_S - (time.monotonic() - started)
            if left < 60:
                broken.append(f"{stack.name}: not run, the {DEADLINE_S} s budget is spent")
                continue
            site = None
            if stack.wheels:
                site = Path(tmp) / f"site-{stack.name}"
                why = install(stack, args.python, site, log)
                if why:
                    broken.append(f"{stack.name}: wheels did not install ({why})")
                    continue
            env = stack_env(dict(os.environ), site, args.bundle)
            envs[stack.name] = probe(args.python, env)
            log.append(f"== stack {stack.name}: {json.dumps(envs[stack.name])}")
            print(f"gpu-check: stack {stack.name}: " + ", ".join(f"{k} {v}" for k, v in envs[stack.name].items()),
                  flush=True)
            junit = args.out / f"junit-{stack.name}.xml"
            junit.unlink(missing_ok=True)
            cmd = pytest_command(args.python, junit)
            code: int | None = None
            try:
                run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                     timeout=DEADLINE_S - (time.monotonic() - started))
                code = run.returncode
                log.append(f"$ {' '.join(cmd)}\n{run.stdout}{run.stderr}")
            except subprocess.TimeoutExpired as exc:
                log.append(f"$ {' '.join(cmd)}\n{exc.stdout or ''}{exc.stderr or ''}")
                broken.append(f"{stack.name}: pytest ran past the {DEADLINE_S} s budget")
            ran = read_junit(junit, stack.name) if junit.is_file() else []
            results += ran
            broken += [f"{stack.name}: {p}" for p in stack_problems(stack.name, ran, code)]
            write_report(args.out, gpu, envs, broken, results, log, time.monotonic() - started)
    text = write_report(args.out, gpu, envs, broken, results, log, time.monotonic() - started)
    print(text)
    if any(r.outcome == "skipped" and "TensorRT not available" in r.message for r in results):
        print("gpu-check: TensorRT was not available here: the TensorRT tests did not run (see the skips above)")
    count = totals(results)
    return 1 if broken or count["failed"] or count["error"] else 0


def write_report(out: Path, gpu: str, envs: dict[str, dict[str, str]], broken: list[str], results: list[CaseResult],
                 log: list[str], seconds: float) -> str:
    """gpu-check.md (environment per stack, what did not run and why, the table, totals) and
    gpu-check.log (every command's output, then the report). Returns the report's text."""
    count = totals(results)
    report = [f"# gpu-check: {gpu}", ""]
    for name, info in envs.items():
        report.append(f"- stack `{name}`: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    report += [f"- NOT PROVEN: {b}" for b in broken]
    report += ["", table(results), "",
               f"{count['passed']} passed, {count['failed'] + count['error']} failed, {count['skipped']} skipped "
               f"in {seconds:.0f} s"]
    text = "\n".join(report)
    (out / "gpu-check.log").write_text("\n".join(log) + "\n\n" + text + "\n")
    (out / "gpu-check.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    sys.exit(main())
