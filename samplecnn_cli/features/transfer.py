"""Transfer learning on extracted features (Section 4.1): a two-hidden-layer MLP per target dataset.

Schedule (our choice; the paper gives only the architecture): Adam (lr 1e-4 by default, no weight
decay), mini-batches of 64 shuffled clips, up to `epochs` epochs; after each epoch the validation
loss is measured and the best weights by validation loss are kept (checkpoints/best.pt); training
stops when it has not improved for `patience` epochs. Loss: binary cross-entropy on sigmoid outputs
(multi-label) or cross-entropy on softmax outputs (single-label), following the target's task.

Feature columns are standardised with the training split's per-column mean and std, stored in the
model's buffers. The selected columns are recorded in config.toml ([features] with one entry per
(file, run, layer, pooling) block) so `predict_transfer_split` can rebuild the same matrix for any
split: that is what `samplecnn evaluate` calls for a run of kind "transfer".

Features are read into memory per split (the MLP's input is one row per clip: clips x columns x 4
bytes, e.g. 15k MTAT clips x 3,072 columns = 184 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from samplecnn_cli.core.errors import DataError, UsageError
from samplecnn_cli.core.runtime import Runtime, task_loss
from samplecnn_cli.data.features_file import Selection, select_features
from samplecnn_cli.inference.evaluate import predict_transfer_split
from samplecnn_cli.models.transfer import TransferMLP
from samplecnn_cli.runs import folder as run_files
from samplecnn_cli.training.config import RunOptions
from samplecnn_cli.training.loop import fit, summary
from samplecnn_cli.training.run import Run
from samplecnn_cli.training.schedule import EarlyStopping
from samplecnn_cli.training.state import TrainState
from samplecnn_cli.training.steps import ValidationSet, train_step, validate_rows

MODEL_NAME = "transfer-mlp"


@dataclass(kw_only=True)
class TransferOptions(RunOptions):
    hidden: int = 4096
    dropout: float = 0.5
    epochs: int = 100
    lr: float = 1e-4
    batch_size: int = 64
    patience: int = 10
    precision: str = "fp32"  # a small MLP: fp32 costs little; bf16/fp16 on request

    def validate(self) -> TransferOptions:
        if self.epochs < 1 or self.batch_size < 1 or self.hidden < 1 or self.patience < 1 or not 0 < self.lr < float("inf"):
            raise UsageError("--epochs, --batch-size, --hidden, --patience and --lr must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError("--dropout must be in [0, 1)")
        self.check_runtime()
        return self


def train_transfer(feature_paths: list[Path], out: Path, options: TransferOptions | None = None, *,
                   runs: tuple[str, ...] | None = None, layers: tuple[int, ...] | None = None,
                   poolings: tuple[str, ...] | None = None, resume: bool = False, console=None) -> dict:
    """Train a TransferMLP on the selected columns, write a run directory, evaluate on test. Epoch lines
    go to `console` when given, and to train.log. With `resume`, a run in `out` continues from its last
    epoch (its last.pt), on the columns it was started with; without, a failed run there is redone."""
    opts = (options or TransferOptions()).validate()
    selection = select_features(list(feature_paths), runs, layers, poolings)
    for split in ("train", "valid"):
        if split not in selection.files[0].splits:
            raise DataError(f"{selection.files[0].path.name} has no '{split}' split, which transfer needs",
                            hint="extract with --splits train,valid,test")
    precision = Runtime.resolve(opts.device, opts.precision).step_precision()
    run = Run.prepare(Path(out), resume=resume, start_over_failed=not resume)  # a killed transfer is cheap to redo
    if run.resumable(resume):
        _check_same_columns(run, selection)
    with run.lifecycle():
        return _train_and_test(selection, run, opts, precision, console, run.resumable(resume))


def _check_same_columns(run: Run, selection: Selection) -> None:
    saved = run_files.read_config(run.path).get("features", {}).get("blocks")
    if saved != selection.describe():
        raise UsageError(f"{run.path} was trained on other feature columns",
                         hint="resume with the same feature files and --runs/--layers/--pooling, or use a new --out")


def _train_and_test(selection: Selection, run: Run, opts: TransferOptions, precision, console, resuming: bool) -> dict:
    torch.manual_seed(opts.seed)
    runner = FeatureRunner(selection, opts, precision)
    config = _config(selection, opts, precision, runner.model_kwargs)
    save = dict(model_name=MODEL_NAME, model_kwargs=runner.model_kwargs, label_names=selection.label_names,
                task=selection.task, sample_rate=config["sample_rate"], kind="transfer")
    state = runner.new_state()
    if resuming:
        run.resume(state)
    else:
        run.begin(config, run_files.environment_info(opts.seed))
    fit(state, runner, run.hooks(console, save), opts.epochs)
    result = {**summary(state, "transfer", MODEL_NAME), "run_dir": str(run.path), "columns": selection.width,
              "train_clips": runner.train_clips, "valid_clips": len(runner.valid.targets)}
    if "test" in selection.files[0].splits:  # what `samplecnn evaluate RUN_DIR` writes: metrics.json + predictions
        loaded = run_files.load_run(run.path)
        scores, targets = predict_transfer_split(loaded, "test")
        metrics = run_files.record_evaluation(loaded, "test", scores, targets, source=config["features"])
        result["test"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    run.finish(result)
    return result


def _config(selection: Selection, opts: TransferOptions, precision, model_kwargs: dict) -> dict:
    """config.toml of a transfer run: the selected columns and the training options."""
    return {
        "kind": "transfer", "model": MODEL_NAME, "task": selection.task, "label_names": selection.label_names,
        "sample_rate": selection.files[0].sample_rate, "seed": opts.seed, "dataset": selection.files[0].dataset,
        "model_kwargs": model_kwargs,
        "features": {
            "files": [str(ff.path.resolve()) for ff in selection.files], **selection.filters,
            "columns": selection.width, "blocks": selection.describe(),
        },
        "training": {"optimizer": "adam", "lr": opts.lr, "epochs": opts.epochs, "batch_size": opts.batch_size,
                     "patience": opts.patience, "hidden": opts.hidden, "dropout": opts.dropout,
                     "selection": "best valid loss", "device": str(precision.device), "precision": precision.name},
    }


class FeatureRunner:
    """The epoch loop's runner for transfer: shuffled mini-batches of feature rows, one row per clip."""

    unit = "clips"

    def __init__(self, selection: Selection, opts: TransferOptions, precision):
        x_train, y_train, _ = selection.read("train")
        x_valid, y_valid, _ = selection.read("valid")
        self.model_kwargs = {"in_features": selection.width, "num_outputs": len(selection.label_names),
                             "hidden": opts.hidden, "dropout": opts.dropout, "task": selection.task}
        self.model = TransferMLP(**self.model_kwargs)
        self.model.set_feature_stats(torch.from_numpy(x_train.mean(axis=0)), torch.from_numpy(x_train.std(axis=0)))
        self.model.to(precision.device)
        self.opts, self.precision, self.loss_of = opts, precision, task_loss(selection.task)
        self.x, self.y, self.train_clips = torch.from_numpy(x_train), torch.from_numpy(y_train), len(x_train)
        xv, yv = torch.from_numpy(x_valid), torch.from_numpy(y_valid)
        batches = [(xv[i:i + 256], yv[i:i + 256], torch.arange(i, min(i + 256, len(xv))))
                   for i in range(0, len(xv), 256)]
        self.valid = ValidationSet(batches, y_valid.astype(bool), selection.label_names, selection.task)
        self.generator = torch.Generator().manual_seed(opts.seed)

    def new_state(self):
        return TrainState(model=self.model, new_optimizer=lambda model, lr: torch.optim.Adam(model.parameters(), lr=lr),
                          schedule=EarlyStopping(lr=self.opts.lr, patience=self.opts.patience),
                          precision=self.precision, generators={"shuffle": self.generator})

    def train_epoch(self, state) -> tuple[float, int]:
        state.model.train()
        order = torch.randperm(self.train_clips, generator=self.generator)
        total = 0.0
        for begin in range(0, self.train_clips, self.opts.batch_size):
            idx = order[begin:begin + self.opts.batch_size]
            loss = train_step(state.model, state.optimizer, state.precision, self.loss_of, (self.x[idx], self.y[idx]))
            total += loss.item() * len(idx)
        return total / max(1, self.train_clips), self.train_clips

    def validate(self, state) -> dict:
        return validate_rows(state.model, self.valid, state.precision)
