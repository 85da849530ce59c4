"""A light runtime for exported models (``speechkd export --format onnx``): numpy, onnxruntime and
the text frontend. Nothing in this package imports torch or Lightning, so a cold synthesis from
an exported dir starts fast (a test checks sys.modules)."""
