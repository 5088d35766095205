"""Preprocessed HDF5 stores and the segment datasets read from them."""
