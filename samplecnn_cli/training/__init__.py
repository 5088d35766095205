"""Training: the recipe (config.py, schedule.py), the epoch loop and its hooks (loop.py), the run
lifecycle shared by train and transfer (run.py), the state last.pt holds (state.py), the step bodies
(steps.py), torchrun (distributed.py) and the trainer of waveform models (trainer.py).

May import inference, runs, data, models and core."""
