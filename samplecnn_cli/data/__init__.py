"""Audio and data on disk: decoding (audio.py), dataset adapters (datasets/), preprocessing
that turns a dataset into an HDF5 store (preprocess.py), the store itself (store.py), training segments and
their loader (segments.py, loader.py), and the feature file `extract` writes (features_file.py).

May import models and core."""
