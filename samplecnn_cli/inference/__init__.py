"""Fast batched inference shared by tag, embed, extract and evaluate.

fold.py      batch norm folded into copies of the conv weights (eval only)
backend.py   candidate backends (eager, TorchScript frozen, bf16) and the one picked by measurement
engine.py    the decode pool + batched streaming engine (segments of several files share a batch)
writers.py   CSV / JSONL tag writers (streamed, resumable) and the embedding HDF5 writer
"""
