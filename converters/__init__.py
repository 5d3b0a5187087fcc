"""The build side: PyTorch checkpoint -> ONNX with post-processing in the graph.

May import torch (lazily, inside functions); the runtime package never does.
"""
