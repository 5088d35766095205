"""Run folders and the workspace: what a run writes and how it is loaded back (folder.py), and where
raw datasets, stores and runs live (workspace.py).

May import core, models and data."""
