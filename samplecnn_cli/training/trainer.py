"""`train()`: the paper's training recipe on a preprocessed store, writing a run directory.

Epoch loop: all non-overlapping training segments, shuffled by (seed, epoch) -> validation loss (and a
song-level validation metric) -> schedule decision (keep, reload best + lr / 5, stop) -> metrics line,
best.pt when validation loss improved, last.pt (everything needed to resume). Under torchrun the model
is wrapped in DistributedDataParallel, each rank trains on its share of every global batch, rank 0
validates and broadcasts the loss, and rank 0 alone writes.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from samplecnn_cli import runs
from samplecnn_cli.data.loader import SegmentDataset, epoch_segments, segment_loader, set_epoch
from samplecnn_cli.data.store import Store
from samplecnn_cli.errors import DataError, RunError, UsageError
from samplecnn_cli.training import distributed as dist_util
from samplecnn_cli.training.config import TrainConfig
from samplecnn_cli.training.device import configure_threads, resolve_device, resolve_precision
from samplecnn_cli.training.progress import EpochProgress
from samplecnn_cli.training.schedule import DECREASE, STOP, PaperSchedule
from samplecnn_cli.training.steps import (
    logits_batch,
    loss_function,
    loss_targets,
    outputs_to_scores,
    train_step,
)

log = logging.getLogger("samplecnn.train")


def train(*, model: str, data: str | Path | None = None, dataset: str | None = None, out: str | Path | None = None,
          epochs: int | None = None, batch_size: int = 23, lr: float = 0.01, precision: str = "auto",
          device: str = "auto", workers: int | None = None, seed: int = 0, resume: bool = False,
          console: Console | None = None, **model_overrides) -> Path:
    """Train `model` on a store (`data`, or `dataset` looked up in the workspace); return the run dir."""
    console = console or Console(stderr=True)
    info = dist_util.from_environment()
    torch_device = resolve_device(device, info.local_rank)
    if torch_device.type == "cpu":
        configure_threads(info.local_world_size)
    dist_util.init(info, torch_device)
    try:
        return _train(info, torch_device, console, model=model, data=data, dataset=dataset, out=out,
                      epochs=epochs, batch_size=batch_size, lr=lr, precision=precision, workers=workers,
                      seed=seed, resume=resume, model_overrides=model_overrides)
    finally:
        dist_util.shutdown(info)


# -- setup -----------------------------------------------------------------------------------------
def find_store_dir(model: str, data, dataset) -> Path:
    """--data wins; --dataset: the workspace's only store, else the one at the model's native rate."""
    if (data is None) == (dataset is None):
        raise UsageError("pass exactly one of --data DIR or --dataset NAME")
    if data is not None:
        return Path(data)
    from samplecnn_cli.registry import native_sample_rate
    from samplecnn_cli.workspace import Workspace

    ws = Workspace.find()
    stores = ws.stores(dataset)
    return ws.find_store(dataset, None if len(stores) == 1 else native_sample_rate(model))


def rate_warning(model_name: str, store_rate: int) -> str | None:
    """A warning when a paper configuration's native rate is not the store's, naming the config for it.

    Models outside the paper's tables (sample-3^6, plugins...) have no rate they were designed for.
    """
    from samplecnn_cli.registry import canonical_name, catalogue_entry, config_for_rate, native_sample_rate

    entry = catalogue_entry(canonical_name(model_name))
    native = native_sample_rate(model_name)
    if entry is None or not entry.table or native == store_rate:
        return None
    entry = config_for_rate(store_rate)
    better = (f"the paper's config for {store_rate:,} Hz is {entry.name}" if entry
              else f"the paper has no config for {store_rate:,} Hz")
    return f"{model_name} is the paper's {native:,} Hz configuration but the store is at {store_rate:,} Hz; {better}"


def input_statistics(model, dataset: SegmentDataset, count: int, seed: int) -> tuple[float, float, int]:
    """Mean and std of the model's spectrogram over up to `count` random training segments."""
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(dataset), size=min(count, len(dataset)), replace=False))
    total = total_sq = n = 0.0
    with torch.inference_mode():
        for i in range(0, len(picks), 64):
            x = torch.stack([dataset[int(j)][0] for j in picks[i:i + 64]])
            spec = model.spectrogram(x).double()
            total += spec.sum().item()
            total_sq += (spec * spec).sum().item()
            n += spec.numel()
    mean = total / n
    return mean, math.sqrt(max(total_sq / n - mean * mean, 0.0)), len(picks)


def _prepare_out(info, out, model_name: str, dataset_name: str, resume: bool) -> Path:
    """Rank 0 picks and creates the run dir; every rank gets its path (or the same error)."""
    result: tuple[str, str | None, str | None] = ("", None, None)
    if info.is_main:
        try:
            if out is None:
                if resume:
                    raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
                from samplecnn_cli.workspace import Workspace

                out = Workspace.find().new_run_dir(model_name, dataset_name)
            result = (str(runs.prepare_run_dir(Path(out), resume=resume)), None, None)
        except (RunError, UsageError) as exc:
            result = ("", type(exc).__name__, exc.message + ("\n" + exc.hint if exc.hint else ""))
    path, kind, message = dist_util.broadcast(info, result)
    if kind:
        text, _, hint = message.partition("\n")
        raise (UsageError if kind == "UsageError" else RunError)(text, hint=hint or None)
    return Path(path)


# -- the loop --------------------------------------------------------------------------------------
def _train(info, device, console, *, model, data, dataset, out, epochs, batch_size, lr, precision, workers,
           seed, resume, model_overrides) -> Path:
    from samplecnn_cli.registry import canonical_name, create_model

    if epochs is not None and epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if batch_size < 1 or lr <= 0:
        raise UsageError("--batch-size and --lr must be positive")
    if out is not None and resume and (Path(out) / "config.toml").is_file():
        saved = runs.read_config(Path(out))
        if canonical_name(model) != saved["model"]:
            raise UsageError(f"{out} trained {saved['model']}, not {canonical_name(model)}")
        model_overrides = {**saved.get("model_overrides", {}), **model_overrides}
        data, dataset = saved["data"], None
        batch_size, lr, seed = saved["batch_size"], saved["lr"], saved["seed"]
        precision = saved.get("precision_requested", precision)
    name = canonical_name(model)
    precision_name = resolve_precision(precision, device)
    store_dir = find_store_dir(model, data, dataset).resolve()
    store = Store(store_dir)
    train_split, valid_split = store.split("train"), store.split("valid")
    if len(train_split) == 0 or len(valid_split) == 0:
        raise DataError(f"{store_dir}: the train and valid splits must hold clips")
    warning = rate_warning(name, store.sample_rate)
    if warning and info.is_main:
        console.print(f"[yellow]Warning:[/] {warning}", highlight=False)

    torch.manual_seed(seed)
    overrides = {k: v for k, v in model_overrides.items() if v is not None}
    net = create_model(name, num_outputs=len(store.label_names), sample_rate=store.sample_rate, **overrides)
    model_kwargs = {"num_outputs": len(store.label_names), "sample_rate": store.sample_rate, **overrides}
    train_set = SegmentDataset(train_split, net.input_samples)
    valid_set = SegmentDataset(valid_split, net.input_samples)

    run_dir = _prepare_out(info, out, name, store.dataset or store_dir.name, resume)
    cfg = TrainConfig(model=name, epochs=epochs, batch_size=batch_size, lr=lr, precision=precision_name,
                      device=device.type, workers=workers, seed=seed, model_overrides=overrides)
    workers = cfg.workers if cfg.workers is not None else (0 if device.type == "cpu" else 8)
    local_batch = max(1, batch_size // info.world_size)
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    resuming = resume and last_path.is_file()

    stats_note = None
    if hasattr(net, "set_input_stats") and not resuming:
        mean, std, used = input_statistics(net, train_set, cfg.input_stats_segments, seed)
        net.set_input_stats(mean, std)
        stats_note = {"mean": mean, "std": std, "segments": used}

    config = {
        "kind": "train", "model": name, "model_kwargs": model_kwargs, "model_overrides": overrides,
        "data": str(store_dir), "dataset": store.dataset, "sample_rate": store.sample_rate,
        "label_names": store.label_names, "task": store.task, "input_samples": net.input_samples,
        **{k: v for k, v in cfg.to_dict().items() if k not in ("model", "model_overrides")},
        "precision_requested": precision, "workers": workers, "world_size": info.world_size,
        "local_batch_size": local_batch, "input_stats": stats_note,
        "recipe": "SGD Nesterov momentum 0.9; lr / 5 after 3 epochs without validation improvement, "
                  "best weights reloaded; a plateau after 4 decreases stops",
    }
    if info.is_main:
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        if not resuming:
            _truncate_metrics(run_dir / "metrics.jsonl", 0)  # killed before its first last.pt: start over
            runs.write_config(run_dir, config)
            env = runs.environment_info(seed)
            env.update(device=str(device), precision=precision_name, world_size=info.world_size)
            runs.write_json(run_dir / "env.json", env)
            log.info("config %s", json.dumps(config, default=str))
        if warning:
            log.warning(warning)
    if info.is_main:
        runs.mark_status(run_dir, runs.RUNNING)
    try:
        return _loop(info, device, console, net, name, model_kwargs, store, train_set, valid_set, cfg,
                     precision_name, workers, local_batch, run_dir, resuming, last_path, best_path)
    except BaseException as exc:
        if info.is_main:
            runs.mark_status(run_dir, runs.FAILED, reason=f"{type(exc).__name__}: {exc}"[:300])
        raise
    finally:
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()


def _loop(info, device, console, net, name, model_kwargs, store, train_set, valid_set, cfg, precision,
          workers, local_batch, run_dir, resuming, last_path, best_path) -> Path:
    task, labels = store.task, store.label_names
    net.to(device)
    model = torch.nn.parallel.DistributedDataParallel(net) if info.enabled else net
    loss_fn = loss_function(task)
    schedule = PaperSchedule(lr=cfg.lr, factor=cfg.lr_factor, patience=cfg.patience, decreases=cfg.lr_decreases)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def new_optimizer():
        return torch.optim.SGD(net.parameters(), lr=schedule.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)

    optimizer = new_optimizer()
    start_epoch, spent = 0, 0.0
    best_state = copy.deepcopy(net.state_dict())
    if resuming:
        ckpt = runs.load_checkpoint(last_path, map_location=str(device))
        net.load_state_dict(ckpt["state_dict"])
        schedule.load_state_dict(ckpt["schedule"])
        optimizer = new_optimizer()
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        start_epoch, spent = int(ckpt["epoch"]), float(ckpt["train_seconds"])
        if best_path.is_file():
            best_state = runs.load_checkpoint(best_path, map_location=str(device))["state_dict"]
        if info.is_main:
            _truncate_metrics(run_dir / "metrics.jsonl", start_epoch)
            log.info("resumed from %s at epoch %d", last_path, start_epoch)
            console.print(f"Resuming {run_dir} after epoch {start_epoch}", highlight=False)
        if ckpt.get("stop_reason"):
            return _finish(info, run_dir, net, schedule, start_epoch, spent, ckpt["stop_reason"], console)

    loader = segment_loader(train_set, batch_size=local_batch, shuffle=True, seed=cfg.seed,
                            world_size=info.world_size, rank=info.rank, workers=workers,
                            pin_memory=device.type == "cuda")
    valid_loader = segment_loader(valid_set, batch_size=max(local_batch, 64), shuffle=False,
                                  workers=workers, pin_memory=device.type == "cuda")
    save = dict(model_name=name, model_kwargs=model_kwargs, label_names=labels, task=task,
                sample_rate=store.sample_rate)
    if info.is_main:
        console.print(f"Training {name} ({net.num_params():,} params) on {store.directory} "
                      f"({len(train_set):,} training segments of {net.input_samples:,} samples), "
                      f"{device.type}, {precision}, batch {cfg.batch_size}"
                      f"{f' ({info.world_size} processes)' if info.enabled else ''} -> {run_dir}", highlight=False)

    epoch, stop_reason = start_epoch, None
    while stop_reason is None:
        if cfg.epochs is not None and epoch >= cfg.epochs:
            stop_reason = f"epoch cap ({cfg.epochs})"
            break
        epoch += 1
        lr_used = schedule.lr
        began = time.perf_counter()
        set_epoch(loader, epoch)
        model.train()
        total_loss, steps, seen = 0.0, 0, 0
        with EpochProgress(console, epoch, len(loader), enabled=info.is_main) as bar:
            for x, y, _ in loader:
                loss = train_step(model, optimizer, loss_fn, x, y, task=task, device=device,
                                  precision=precision, scaler=scaler)
                value = loss.item()
                if not math.isfinite(value):
                    raise RunError(f"training loss became {value} at epoch {epoch}",
                                   hint="lower --lr, or use --precision fp32")
                total_loss, steps, seen = total_loss + value, steps + 1, seen + x.shape[0]
                bar.advance(total_loss / steps, seen * info.world_size)
        train_seconds = time.perf_counter() - began
        train_loss, = dist_util.all_reduce_mean(info, [total_loss / max(steps, 1)], device)
        valid = validate(net, valid_loader, valid_set, task, labels, device, precision) if info.is_main else None
        valid = dist_util.broadcast(info, valid)
        decision = schedule.step(epoch, valid["loss"])
        improved = schedule.best_epoch == epoch
        if improved:
            best_state = copy.deepcopy(net.state_dict())
            if info.is_main:
                runs.save_checkpoint(best_path, state_dict=best_state, extra={"epoch": epoch}, **save)
        if decision == DECREASE:  # the authors' recipe: back to the best weights, smaller lr, fresh momentum
            net.load_state_dict(best_state)
            optimizer = new_optimizer()
        elif decision == STOP:
            stop_reason = f"validation loss did not improve for {cfg.patience} epochs after {cfg.lr_decreases} lr decreases"
        seconds = time.perf_counter() - began
        spent += seconds
        row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid["loss"], valid["metric"]: valid["value"],
               "lr": lr_used, "seconds": round(seconds, 3), "train_seconds": round(train_seconds, 3),
               "segments": len(train_set), "segments_per_second": round(epoch_segments(loader) * info.world_size
                                                                         / train_seconds, 2),
               "best": improved, "decision": decision}
        if info.is_main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            line = (f"epoch {epoch}: train loss {train_loss:.4f}, valid loss {valid['loss']:.4f}, "
                    f"{valid['metric'].replace('_', ' ')} {valid['value']:.4f}, lr {lr_used:g}, "
                    f"{row['segments_per_second']:,.1f} segments/s, {seconds:.1f} s"
                    + (" *best*" if improved else "") + (f", lr -> {schedule.lr:g}" if decision == DECREASE else ""))
            console.print(line, highlight=False)
            log.info(line)
            _save_last(last_path, net, optimizer, schedule, scaler, device, epoch, spent, stop_reason, save)
        dist_util.barrier(info)
    if info.is_main:
        _save_last(last_path, net, optimizer, schedule, scaler, device, epoch, spent, stop_reason, save)
    return _finish(info, run_dir, net, schedule, epoch, spent, stop_reason, console)


def validate(net, loader, dataset: SegmentDataset, task: str, labels: list[str], device, precision) -> dict:
    """Segment-level validation loss and a song-level metric (mean of segment outputs per clip)."""
    from samplecnn_cli.evaluation.metrics import compute_metrics

    net.eval()
    loss_fn = loss_function(task)
    clips = dataset.split.labels.shape[0]
    sums = np.zeros((clips, len(labels)), np.float64)
    counts = np.zeros(clips, np.int64)
    total, n = 0.0, 0
    for x, y, clip in loader:
        logits = logits_batch(net, x, device=device, precision=precision)
        total += loss_fn(logits, loss_targets(y.to(device), task)).item() * x.shape[0]
        n += x.shape[0]
        np.add.at(sums, clip.numpy(), outputs_to_scores(logits, task).cpu().numpy())
        np.add.at(counts, clip.numpy(), 1)
    net.train()
    scores = sums / np.maximum(counts, 1)[:, None]
    metrics = compute_metrics(scores, dataset.split.labels, task, labels)
    metric = "valid_accuracy" if task == "multiclass" else "valid_roc_auc"
    value = metrics["accuracy"] if task == "multiclass" else metrics["roc_auc"]
    return {"loss": total / max(n, 1), "metric": metric, "value": float("nan") if value is None else float(value)}


def _save_last(path, net, optimizer, schedule, scaler, device, epoch, spent, stop_reason, save) -> None:
    rng = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    runs.save_checkpoint(path, state_dict=net.state_dict(), extra={
        "epoch": epoch, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng, "train_seconds": spent,
        "stop_reason": stop_reason}, **save)


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Drop metric lines of epochs after the checkpoint (written just before a kill)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["epoch"] <= epoch]
    runs.atomic_write_text(path, "".join(line + "\n" for line in keep))


def _finish(info, run_dir, net, schedule, epoch, spent, stop_reason, console) -> Path:
    if info.is_main:
        summary = {"epochs": epoch, "best_epoch": schedule.best_epoch, "best_valid_loss": schedule.best_loss,
                   "final_lr": schedule.lr, "lr_decreases": schedule.decreases_done,
                   "stop_reason": stop_reason, "total_seconds": round(spent, 3), "params": net.num_params(),
                   "world_size": info.world_size}
        runs.write_json(run_dir / "summary.json", summary)
        runs.mark_status(run_dir, runs.DONE)
        line = (f"Done: {epoch} epochs in {spent:.1f} s, best epoch {schedule.best_epoch} "
                f"(valid loss {schedule.best_loss:.4f}); stopped: {stop_reason}. Run: {run_dir}")
        console.print(line, highlight=False)
        log.info(line)
    return run_dir
