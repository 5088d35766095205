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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from samplecnn_cli import runs as run_files
from samplecnn_cli.errors import DataError, UsageError
from samplecnn_cli.features.file import Block, FeatureFile
from samplecnn_cli.models.transfer import TransferMLP
from samplecnn_cli.training.device import Precision, resolve_device
from samplecnn_cli.training.engine import CheckpointHook, ConsoleHook, MetricsHook, fit, run_log, summary
from samplecnn_cli.training.schedule import EarlyStopping
from samplecnn_cli.training.state import TrainState
from samplecnn_cli.training.steps import ValidationSet, task_loss, train_step, validate

MODEL_NAME = "transfer-mlp"


@dataclass
class Selection:
    """The chosen columns: per feature file, its blocks in column order."""

    files: list[FeatureFile]
    blocks: list[list[Block]]
    label_names: list[str]
    task: str
    filters: dict = field(default_factory=dict)  # the --runs, --layers, --pooling asked for

    @property
    def width(self) -> int:
        return sum(b.channels for blocks in self.blocks for b in blocks)

    def read(self, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Features (N, width), bool targets (N, L) and clip ids of one split, checked across files."""
        first = self.files[0]
        clip_ids = first.clip_ids(split)
        parts = []
        for ff, blocks in zip(self.files, self.blocks, strict=True):
            if not blocks:
                continue
            if ff is not first and ff.clip_ids(split) != clip_ids:
                raise DataError(f"{ff.path.name} and {first.path.name} hold different clips in '{split}'",
                                hint="extract all feature files from the same store")
            parts.append(ff.read(split, blocks))
        return np.concatenate(parts, axis=1), first.labels(split), clip_ids

    def describe(self) -> list[dict]:
        return [{"file": str(ff.path.resolve()), "run": b.run, "model": b.model, "layer": b.layer,
                 "pooling": b.pooling, "channels": b.channels}
                for ff, blocks in zip(self.files, self.blocks, strict=True) for b in blocks]


def select_features(paths: list[Path], runs: tuple[str, ...] | None = None, layers: tuple[int, ...] | None = None,
                    poolings: tuple[str, ...] | None = None) -> Selection:
    """Open feature files and pick the columns matching the filters (a run may live in any file)."""
    if not paths:
        raise UsageError("give at least one feature file (written by `samplecnn extract`)")
    files = [FeatureFile(Path(p)) for p in paths]
    first = files[0]
    for ff in files[1:]:
        if (ff.label_names, ff.task) != (first.label_names, first.task):
            raise DataError(f"{ff.path.name} and {first.path.name} were extracted from stores with different labels",
                            hint="combine feature files of the same target dataset only")
    if runs:
        known = {r for ff in files for r in ff.runs} | {b.model for ff in files for b in ff.blocks}
        bad = [r for r in runs if r not in known]
        if bad:
            have = ", ".join(f"{k} ({m})" for ff in files for k, m in ff.run_models().items())
            raise UsageError(f"no run {', '.join(bad)} in the feature files", hint=f"runs there: {have}")
    blocks = [ff.select(runs, layers, poolings, strict=False) for ff in files]
    if not any(blocks):
        raise UsageError("no feature columns match that selection",
                         hint="check --runs, --layers and --pooling against `samplecnn extract`'s output")
    filters = {"runs": list(runs or []), "layers": list(layers or []), "poolings": list(poolings or [])}
    return Selection(files=files, blocks=blocks, label_names=first.label_names, task=first.task, filters=filters)


def selection_from_config(config: dict) -> Selection:
    """Rebuild a transfer run's exact column selection from its config.toml."""
    entries = config["features"]["blocks"]
    paths = list(dict.fromkeys(e["file"] for e in entries))
    files = {p: FeatureFile(Path(p)) for p in paths}
    blocks: list[list[Block]] = []
    for p in paths:
        ff, chosen = files[p], []
        for e in (e for e in entries if e["file"] == p):
            match = [b for b in ff.blocks if (b.run, b.layer, b.pooling) == (e["run"], e["layer"], e["pooling"])]
            if not match:
                raise DataError(f"{p} no longer holds {e['run']} layer {e['layer']} {e['pooling']}",
                                hint="re-extract the features this transfer run was trained on")
            chosen.append(match[0])
        blocks.append(chosen)
    ff0 = files[paths[0]]
    return Selection(files=list(files.values()), blocks=blocks, label_names=ff0.label_names, task=ff0.task)


# -- training ---------------------------------------------------------------------------------------
def predict_scores(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for begin in range(0, x.shape[0], batch_size):
            out.append(model.predict(torch.from_numpy(x[begin:begin + batch_size])).numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, model.num_outputs), np.float32)


@dataclass
class TransferOptions:
    hidden: int = 4096
    dropout: float = 0.5
    epochs: int = 100
    lr: float = 1e-4
    batch_size: int = 64
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # a small MLP: fp32 costs little; bf16/fp16 on request

    def validate(self) -> TransferOptions:
        if self.epochs < 1 or self.batch_size < 1 or self.hidden < 1 or self.patience < 1 or not 0 < self.lr < float("inf"):
            raise UsageError("--epochs, --batch-size, --hidden, --patience and --lr must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError("--dropout must be in [0, 1)")
        return self


def train_transfer(feature_paths: list[Path], out: Path, *, runs: tuple[str, ...] | None = None,
                   layers: tuple[int, ...] | None = None, poolings: tuple[str, ...] | None = None,
                   console=None, **options) -> dict:
    """Train a TransferMLP on the selected columns (options: TransferOptions' fields), write a run
    directory, evaluate on test. Epoch lines go to `console` when given, and to train.log."""
    opts = TransferOptions(**options).validate()
    selection = select_features(list(feature_paths), runs, layers, poolings)
    for split in ("train", "valid"):
        if split not in selection.files[0].splits:
            raise DataError(f"{selection.files[0].path.name} has no '{split}' split, which transfer needs",
                            hint="extract with --splits train,valid,test")
    precision = Precision.resolve(opts.precision, resolve_device(opts.device))
    run_dir = run_files.RunDir(Path(out)).prepare(start_over_failed=True)  # a killed transfer is redone
    run_dir.mark(run_files.RUNNING)
    try:
        return _train_and_test(selection, run_dir, opts, precision, console)
    except BaseException as exc:
        run_dir.mark(run_files.FAILED, reason=f"{type(exc).__name__}: {exc}"[:300])
        raise


def _train_and_test(selection: Selection, run_dir, opts: TransferOptions, precision, console) -> dict:
    torch.manual_seed(opts.seed)
    runner = FeatureRunner(selection, opts, precision)
    config = _config(selection, opts, precision, runner.model_kwargs)
    run_dir.write_config(config)
    run_files.write_json(run_dir.env, run_files.environment_info(opts.seed))
    save = dict(model_name=MODEL_NAME, model_kwargs=runner.model_kwargs, label_names=selection.label_names,
                task=selection.task, sample_rate=config["sample_rate"], kind="transfer")
    state = runner.new_state()
    with run_log(run_dir):
        hooks = [ConsoleHook(console, run_dir.path), MetricsHook(run_dir), CheckpointHook(run_dir, save, False)]
        fit(state, runner, hooks, opts.epochs)
    result = {**summary(state, "transfer", MODEL_NAME), "run_dir": str(run_dir.path), "columns": selection.width,
              "train_clips": runner.train_clips, "valid_clips": len(runner.valid.targets)}
    if "test" in selection.files[0].splits:  # what `samplecnn evaluate RUN_DIR` writes: metrics.json + predictions
        loaded = run_files.load_run(run_dir.path)
        scores, targets = predict_transfer_split(loaded, "test")
        metrics = run_files.record_evaluation(loaded, "test", scores, targets, source=config["features"])
        result["test"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    run_dir.write_summary(result)
    run_dir.mark(run_files.DONE)
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
    """The engine's runner for transfer: shuffled mini-batches of feature rows, one row per clip."""

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
                          precision=self.precision)

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
        return validate(state.model, self.valid, state.precision)


def predict_transfer_split(loaded_run, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, L) and bool targets (N, L) of a transfer run on one split of its feature files."""
    selection = selection_from_config(loaded_run.config)
    x, targets, _ = selection.read(split_name)
    model = loaded_run.model
    if x.shape[1] != model.in_features:
        raise DataError(f"the feature files now give {x.shape[1]} columns, the model expects {model.in_features}",
                        hint="re-extract the features this transfer run was trained on")
    return predict_scores(model, x), targets.astype(bool)
