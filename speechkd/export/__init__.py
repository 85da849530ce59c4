"""Deployment: exporting trained models to ONNX (``speechkd export``); the runtime that runs the
exported dir without torch lives in :mod:`speechkd.runtime`."""
