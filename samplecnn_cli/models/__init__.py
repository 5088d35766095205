"""The model families of the paper and the registry that builds them by name (registry.py, as timm keeps
it). A family is one module here that registers itself with `@registry.register_family` (sample_level.py,
frame_level.py); transfer.py is Section 4.1's MLP, mel.py the frame-level front end.

May import core."""

from samplecnn_cli.models.base import ModelOutput, WaveformClassifier

__all__ = ["ModelOutput", "WaveformClassifier"]
