"""Partial stubs for cuda-python: only cuda.bindings.runtime, the part edgevision calls."""
__version__: str
