"""Section 4.1, 5.5 and 7 as tasks: song-level multi-level/multi-scale features (extract.py), transfer
learning on them (transfer.py), Tables 4 and 6 in one command (compare.py) and t-SNE (tsne.py).

May import training, inference, runs, data, models and core."""
