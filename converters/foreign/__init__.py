"""ONNX files made by other exporters -> ordinary edgevision artifacts.

spec.py says what a file's raw outputs mean (a --describe YAML, or Ultralytics' own metadata);
heads.py is edgevision's post-processing for each raw layout, as torch modules; graph.py joins
that post-processing to the foreign graph; reference.py runs the foreign file itself for
verification. The family that uses them is converters/families/onnx_file.py.
"""
