"""The paper's metrics: they live in samplecnn_cli.metrics (a core module training uses too)."""

from samplecnn_cli.metrics import compute_metrics

__all__ = ["compute_metrics"]
