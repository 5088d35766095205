"""Model families of the paper. Build them by name through samplecnn_cli.registry.create_model."""

from samplecnn_cli.models.base import ModelOutput, WaveformClassifier

__all__ = ["ModelOutput", "WaveformClassifier"]
