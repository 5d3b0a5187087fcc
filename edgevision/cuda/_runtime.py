"""`cudart`: cuda-python's runtime module, imported on first use.

For mypy, `cudart` is cuda.bindings.runtime as described by typings/cuda (checked
against the installed module by tests/test_tensorrt_cuda.py). At run time it is a proxy
that imports the module on first attribute access, so importing edgevision.cuda costs
nothing and a missing cuda-python fails with an install hint instead of ImportError.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import EdgeVisionError

# cuda-python >= 12.6 (JetPack 6's pip wheel included) has cuda.bindings; older releases
# only the cuda.cudart layout, which has the same functions.
_CANDIDATES = ("cuda.bindings.runtime", "cuda.cudart")


def load_runtime() -> ModuleType:
    errors = []
    for name in _CANDIDATES:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise EdgeVisionError(
        "cuda-python is needed for CUDA memory and streams but cannot be imported "
        f"({'; '.join(errors)}). Install it with: pip install 'cuda-python>=12.6.1,<13'"
    )


class _LazyRuntime:
    def __init__(self) -> None:
        self._module: ModuleType | None = None

    def __getattr__(self, name: str) -> Any:
        if self._module is None:
            self._module = load_runtime()
        return getattr(self._module, name)


if TYPE_CHECKING:
    from cuda.bindings import runtime as cudart
else:
    cudart = _LazyRuntime()

__all__ = ["cudart", "load_runtime"]
