"""The TensorRT backend and what it needs to load an engine (nothing here builds one:
that is edgevision.build, which writes what these modules read).

    backend.py   TensorRTBackend: an engine file on an NVIDIA GPU
    sidecar.py   the JSON beside an engine: its manifest and how it was built
    spec.py      what an engine depends on (BuildSpec, its profiles) and its key
    compat.py    may this engine run here (TensorRT version, GPU, DLA)? before TensorRT is touched
    target.py    which TensorRT is installed, and what a build or a run targets
    io_specs.py  the engine's inputs and outputs, and checking feeds against its profile
    logger.py    TensorRT's ILogger, keeping the errors for messages

Only backend.py touches CUDA; everything imports without TensorRT.
"""
