"""samplecnn: end-to-end music classification on raw waveforms (SampleCNN, Lee et al. 2018)."""

__version__ = "0.1.0"
