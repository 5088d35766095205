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

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samplecnn_cli.errors import DataError, UsageError
from samplecnn_cli.features.file import Block, FeatureFile

MODEL_NAME = "transfer-mlp"


@dataclass
class Selection:
    """The chosen columns: per feature file, its blocks in column order."""

    files: list[FeatureFile]
    blocks: list[list[Block]]
    label_names: list[str]
    task: str

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
    return Selection(files=files, blocks=blocks, label_names=first.label_names, task=first.task)


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
def _loss_fn(task: str):
    import torch.nn.functional as F

    if task == "multilabel":
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y.float())
    return lambda logits, y: F.cross_entropy(logits, y.float().argmax(dim=1))


def _mean_loss(model, x, y, loss_fn, batch_size: int) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for begin in range(0, x.shape[0], batch_size):
            xb, yb = x[begin:begin + batch_size], y[begin:begin + batch_size]
            total += float(loss_fn(model(xb), yb)) * xb.shape[0]
    return total / max(1, x.shape[0])


def predict_scores(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for begin in range(0, x.shape[0], batch_size):
            out.append(model.predict(torch.from_numpy(x[begin:begin + batch_size])).numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, model.num_outputs), np.float32)


def train_transfer(feature_paths: list[Path], out: Path, *, runs: tuple[str, ...] | None = None,
                   layers: tuple[int, ...] | None = None, poolings: tuple[str, ...] | None = None,
                   hidden: int = 4096, dropout: float = 0.5, epochs: int = 100, lr: float = 1e-4,
                   batch_size: int = 64, patience: int = 10, seed: int = 0,
                   on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train a TransferMLP on the selected columns, write a run directory, evaluate on test."""
    import torch

    from samplecnn_cli import runs as runs_mod
    from samplecnn_cli.models.transfer import TransferMLP

    if epochs < 1 or batch_size < 1 or hidden < 1 or patience < 1 or lr <= 0:
        raise UsageError("--epochs, --batch-size, --hidden, --patience and --lr must be positive")
    selection = select_features(list(feature_paths), runs, layers, poolings)
    for split in ("train", "valid"):
        if split not in selection.files[0].splits:
            raise DataError(f"{selection.files[0].path.name} has no '{split}' split, which transfer needs",
                            hint="extract with --splits train,valid,test")
    out = runs_mod.prepare_run_dir(Path(out))
    started = time.perf_counter()
    torch.manual_seed(seed)
    x_train, y_train, _ = selection.read("train")
    x_valid, y_valid, _ = selection.read("valid")
    task, label_names = selection.task, selection.label_names
    model_kwargs = {"in_features": selection.width, "num_outputs": len(label_names), "hidden": hidden,
                    "dropout": dropout, "task": task}
    model = TransferMLP(**model_kwargs)
    model.set_feature_stats(torch.from_numpy(x_train.mean(axis=0)), torch.from_numpy(x_train.std(axis=0)))
    config = {
        "kind": "transfer", "model": MODEL_NAME, "task": task, "label_names": label_names,
        "sample_rate": selection.files[0].sample_rate, "seed": seed, "dataset": selection.files[0].dataset,
        "features": {
            "files": [str(ff.path.resolve()) for ff in selection.files],
            "runs": list(runs or []), "layers": list(layers or []), "poolings": list(poolings or []),
            "columns": selection.width, "blocks": selection.describe(),
        },
        "training": {"optimizer": "adam", "lr": lr, "epochs": epochs, "batch_size": batch_size,
                     "patience": patience, "hidden": hidden, "dropout": dropout, "selection": "best valid loss"},
    }
    runs_mod.write_config(out, config)
    runs_mod.write_json(out / "env.json", runs_mod.environment_info(seed))
    runs_mod.mark_status(out, runs_mod.RUNNING)

    def save(name: str, state: dict, extra: dict) -> None:
        runs_mod.save_checkpoint(out / "checkpoints" / name, model_name=MODEL_NAME, model_kwargs=model_kwargs,
                                 state_dict=state, label_names=label_names, task=task,
                                 sample_rate=config["sample_rate"], kind="transfer", extra=extra)

    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_valid), torch.from_numpy(y_valid)
    loss_fn = _loss_fn(task)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
    metrics_path = out / "metrics.jsonl"
    metrics_path.write_text("")
    for epoch in range(1, epochs + 1):
        tick = time.perf_counter()
        model.train()
        order = torch.randperm(xt.shape[0], generator=generator)
        total = 0.0
        for begin in range(0, len(order), batch_size):
            idx = order[begin:begin + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        valid_loss = _mean_loss(model, xv, yv, loss_fn, 256)
        improved = valid_loss < best_loss
        if improved:
            best_loss, best_epoch, stale = valid_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            save("best.pt", best_state, {"epoch": epoch, "valid_loss": valid_loss})
        else:
            stale += 1
        row = {"epoch": epoch, "train_loss": total / max(1, xt.shape[0]), "valid_loss": valid_loss, "lr": lr,
               "best": improved, "seconds": round(time.perf_counter() - tick, 3)}
        with metrics_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if on_epoch:
            on_epoch(row)
        if stale >= patience:
            break
    save("last.pt", model.state_dict(), {"epoch": epoch})
    model.load_state_dict(best_state)
    train_seconds = time.perf_counter() - started

    result = {"run_dir": str(out), "epochs": epoch, "best_epoch": best_epoch, "best_valid_loss": best_loss,
              "columns": selection.width, "train_clips": int(xt.shape[0]), "valid_clips": int(xv.shape[0]),
              "train_seconds": round(train_seconds, 3)}
    if "test" in selection.files[0].splits:
        # the same code path as `samplecnn evaluate RUN_DIR`: best checkpoint, metrics.json + predictions
        from samplecnn_cli.evaluation.evaluate import evaluate_run

        metrics = evaluate_run(out, "test")
        result["test"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    runs_mod.write_json(out / "summary.json", result)
    runs_mod.mark_status(out, runs_mod.DONE)
    return result


def predict_transfer_split(loaded_run, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, L) and bool targets (N, L) of a transfer run on one split of its feature files."""
    selection = selection_from_config(loaded_run.config)
    x, targets, _ = selection.read(split_name)
    model = loaded_run.model
    if x.shape[1] != model.in_features:
        raise DataError(f"the feature files now give {x.shape[1]} columns, the model expects {model.in_features}",
                        hint="re-extract the features this transfer run was trained on")
    return predict_scores(model, x), targets.astype(bool)
