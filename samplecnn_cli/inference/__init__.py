"""Running trained models: the one inference core (predictor.py: clips -> segment batches -> results per
clip, with pluggable sources and reducers.py), the fastest backend measured here (backend.py, fold.py,
plan.py, onnx_runtime.py), evaluation (evaluate.py), libraries of audio files (library.py, decode.py,
writers.py, embeddings.py, progress.py) and export (export.py).

May import runs, data, models and core."""
