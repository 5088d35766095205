"""This machine: throughput of the training and inference paths (throughput.py, `samplecnn bench`)
and the installation check (doctor.py, `samplecnn doctor`).

May import training, inference, runs, data, models and core."""
