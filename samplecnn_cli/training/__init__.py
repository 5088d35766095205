"""Training: the paper's recipe (config, schedule), device/precision handling, DDP, the trainer."""
