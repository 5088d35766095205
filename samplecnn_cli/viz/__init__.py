"""Figures: gradient-ascent filter visualisation (filters.py, visualize.py; Section 7.1, Figures 2-4) and
every matplotlib figure the toolkit draws (figures.py, bare Figures: no pyplot, no global state).

May import training, inference, runs, data, models and core."""
