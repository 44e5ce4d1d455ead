"""lut.export: ONNX export through optimum, INT8/FP16 variants, parity checks, ONNX Runtime sessions."""
