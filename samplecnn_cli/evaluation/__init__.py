"""Song-level evaluation: predictions averaged over each clip's segments, and the paper's metrics."""
