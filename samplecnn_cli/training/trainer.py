"""`train()`: the paper's training recipe on a preprocessed store, writing a run directory.

What is special to waveform models lives here: finding the store, building the model and the
segment loaders (SegmentRunner: one epoch of segments, validation with a song-level metric; under
torchrun the model is wrapped in DistributedDataParallel, each rank trains on its share of every
global batch, rank 0 validates (steps.validate_clips, through the inference core) and broadcasts, and rank
0 alone writes). The epoch loop, the schedule's decisions, checkpoints and metrics are training/loop.py's,
the run folder's lifecycle training/run.py's; both are shared with `samplecnn transfer`.

Where a new training option plugs in: a field of TrainConfig (config.py; written to config.toml and
read back on --resume), then
  - a schedule: training/schedule.py (the interface is in its docstring), picked in `_schedule`;
  - which splits are trained on: `_training_segments`;
  - segment sampling (random offsets...): data/loader.py's SegmentDataset, built in `_training_segments`;
  - which weights become best.pt (--select): CheckpointHook (best) or _SelectHook (last, swa).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from samplecnn_cli.core.context import DistInfo
from samplecnn_cli.core.errors import DataError, RunError, UsageError
from samplecnn_cli.core.runtime import Runtime, StepPrecision, task_loss
from samplecnn_cli.data.loader import (
    JoinedSegments,
    SegmentDataset,
    epoch_segments,
    segment_loader,
    set_epoch,
)
from samplecnn_cli.data.store import Store
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.training import distributed as dist_util
from samplecnn_cli.training.config import TrainConfig, describe, recipe_options
from samplecnn_cli.training.loop import Hook, fit, log, summary
from samplecnn_cli.training.progress import EpochProgress
from samplecnn_cli.training.run import Run
from samplecnn_cli.training.schedule import FixedSchedule, PaperSchedule
from samplecnn_cli.training.state import TrainState
from samplecnn_cli.training.steps import train_step, validate_clips


def train(model: str, *, data: str | Path | None = None, dataset: str | None = None, out: str | Path | None = None,
          resume: bool = False, console: Console | None = None, workspace: Path | None = None,
          dist: DistInfo | None = None, model_overrides: dict | None = None, **options) -> Path:
    """Train `model` on a store (`data`, or `dataset` looked up in the workspace); return the run dir.

    `options`: `recipe` ("default" or "paper", see training/config.py RECIPES) and TrainConfig's fields
    (epochs, batch_size, lr, schedule, sampling, precision, device, workers, seed, ...; None = the
    recipe's value). `model_overrides` change the model's own arguments (e.g. {"dropout": 0.3}; None
    values are the model's default). Every option is checked before any folder is created. `workspace` (the context's) is where
    --dataset and a run without --out are looked up; `dist` is this process's place under torchrun."""
    fields = TrainConfig.__dataclass_fields__
    recipe = options.pop("recipe", None) or "default"
    unknown = sorted(k for k in options if k not in fields or k in ("model", "recipe", "model_overrides"))
    if unknown:
        raise UsageError(f"unknown training option {unknown[0]!r}", hint="model arguments go in model_overrides")
    overrides = {k: v for k, v in (model_overrides or {}).items() if v is not None}
    cfg = TrainConfig(model=model, recipe=recipe, **recipe_options(recipe, options), model_overrides=overrides).validate()
    job = Job(data=data, dataset=dataset, out=Path(out) if out is not None else None, resume=resume,
              console=console or Console(stderr=True), workspace=workspace)
    info = dist or DistInfo()
    runtime = Runtime.resolve(cfg.device, cfg.precision, info.local_rank)
    dist_util.init(info, runtime.device)
    try:
        return _train(cfg, job, info, runtime)
    finally:
        dist_util.shutdown(info)


@dataclass
class Job:
    """Where a training run reads and writes (what TrainConfig does not hold)."""

    data: str | Path | None
    dataset: str | None
    out: Path | None
    resume: bool
    console: Console
    workspace: Path | None = None


@dataclass
class Setup:
    """The store, the model and the datasets of a run, built before its folder is created."""

    cfg: TrainConfig
    store: Store
    net: torch.nn.Module
    model_kwargs: dict
    train_set: SegmentDataset | JoinedSegments
    warning: str | None


# -- setup -----------------------------------------------------------------------------------------
def find_store_dir(model: str, data, dataset, workspace: Path | None = None) -> Path:
    """--data wins; --dataset: the workspace's only store, else the one at the model's native rate."""
    if (data is None) == (dataset is None):
        raise UsageError("pass exactly one of --data DIR or --dataset NAME")
    if data is not None:
        return Path(data)
    from samplecnn_cli.models.registry import native_sample_rate
    from samplecnn_cli.runs.workspace import Workspace

    ws = Workspace.find(root=workspace)
    stores = ws.stores(dataset)
    return ws.find_store(dataset, None if len(stores) == 1 else native_sample_rate(model))


def rate_warning(model_name: str, store_rate: int) -> str | None:
    """A warning when a paper configuration's native rate is not the store's, naming the config for it.

    Models outside the paper's tables (sample-3^6, plugins...) have no rate they were designed for.
    """
    from samplecnn_cli.models.registry import (
        canonical_name,
        catalogue_entry,
        config_for_rate,
        native_sample_rate,
    )

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


def _prepare_out(info, job: Job, model_name: str, dataset_name: str) -> runs.RunDir:
    """Rank 0 picks and creates the run dir; every rank gets its path (or the same error)."""
    result: tuple[str, str | None, str | None] = ("", None, None)
    if info.is_main:
        try:
            out = job.out
            if out is None:
                if job.resume:
                    raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
                from samplecnn_cli.runs.workspace import Workspace

                out = Workspace.find(root=job.workspace).new_run_dir(model_name, dataset_name)
            result = (str(runs.RunDir(Path(out)).prepare(job.resume).path), None, None)
        except (RunError, UsageError) as exc:
            result = ("", type(exc).__name__, exc.message + ("\n" + exc.hint if exc.hint else ""))
    path, kind, message = dist_util.broadcast(info, result)
    if kind:
        text, _, hint = message.partition("\n")
        raise (UsageError if kind == "UsageError" else RunError)(text, hint=hint or None)
    return runs.RunDir(Path(path))


# -- the run ---------------------------------------------------------------------------------------
def _train(cfg: TrainConfig, job: Job, info, runtime: Runtime) -> Path:
    cfg, data = _resumed_config(cfg, job)
    if cfg.precision != runtime.requested:  # a resumed run keeps the precision it was started with
        runtime = Runtime.resolve(cfg.device, cfg.precision, info.local_rank)
    precision = runtime.step_precision()
    setup = _build(cfg, data, job)
    if setup.warning and info.is_main:
        job.console.print(f"[yellow]Warning:[/] {setup.warning}", highlight=False)
    run = Run(_prepare_out(info, job, cfg.model, setup.store.dataset or setup.store.directory.name),
              is_main=info.is_main)
    with run.lifecycle():
        resuming = run.resumable(job.resume)
        if info.is_main and not resuming:
            run.begin(*_start_config(setup, precision, info))
        if setup.warning and info.is_main:
            log.warning(setup.warning)
        return _fit(setup, run, precision, info, job)


def _resumed_config(cfg: TrainConfig, job: Job) -> tuple[TrainConfig, str | Path | None]:
    """On --resume of an existing run: the run's whole config (see TrainConfig.from_run) and its store."""
    from samplecnn_cli.models.registry import canonical_name

    if not (job.resume and job.out is not None and runs.RunDir(job.out).config.is_file()):
        return cfg, job.data
    saved = runs.read_config(job.out)
    if canonical_name(cfg.model) != saved["model"]:
        raise UsageError(f"{job.out} trained {saved['model']}, not {canonical_name(cfg.model)}")
    job.dataset = None
    return TrainConfig.from_run(saved, cfg).validate(), saved["data"]


def _build(cfg: TrainConfig, data, job: Job) -> Setup:
    from samplecnn_cli.models.registry import canonical_name, create_model

    cfg.model = canonical_name(cfg.model)
    store_dir = _resolved(find_store_dir(cfg.model, data, job.dataset, job.workspace))
    store = Store(store_dir)
    train_split, valid_split = store.split("train"), store.split("valid")
    if len(train_split) == 0 or len(valid_split) == 0:
        raise DataError(f"{store_dir}: the train and valid splits must hold clips")
    torch.manual_seed(cfg.seed)
    model_kwargs = {"num_outputs": len(store.label_names), "sample_rate": store.sample_rate, **cfg.model_overrides}
    net = create_model(cfg.model, **model_kwargs)
    train_set = _training_segments(store, net.input_samples, cfg)
    return Setup(cfg, store, net, model_kwargs, train_set, rate_warning(cfg.model, store.sample_rate))


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DataError(f"cannot resolve {path}: {exc}") from None


def _training_segments(store: Store, input_samples: int, cfg: TrainConfig) -> SegmentDataset | JoinedSegments:
    """The training segments, placed by cfg.sampling: of train, or of train + valid with
    `--train-splits train,valid`. (Validation runs over whole valid clips: steps.validate_clips.)"""
    parts = [SegmentDataset(store.split(name), input_samples, sampling=cfg.sampling, seed=cfg.seed + 7919 * i)
             for i, name in enumerate(cfg.train_splits)]
    return parts[0] if len(parts) == 1 else JoinedSegments(parts)


def _workers(cfg: TrainConfig, device: torch.device) -> int:
    return cfg.workers if cfg.workers is not None else (0 if device.type == "cpu" else 8)


def _start_config(setup: Setup, precision: StepPrecision, info) -> tuple[dict, dict]:
    """A new run (or one started over): the input statistics set on the model, then config.toml's and
    env.json's contents."""
    cfg, net, store = setup.cfg, setup.net, setup.store
    stats = None
    if hasattr(net, "set_input_stats"):
        mean, std, used = input_statistics(net, setup.train_set, cfg.input_stats_segments, cfg.seed)
        net.set_input_stats(mean, std)
        stats = {"mean": mean, "std": std, "segments": used}
    config = {
        **cfg.to_dict(), "kind": "train", "model_kwargs": setup.model_kwargs, "data": str(store.directory),
        "dataset": store.dataset, "sample_rate": store.sample_rate, "label_names": store.label_names,
        "task": store.task, "input_samples": net.input_samples, "precision": precision.name,
        "precision_requested": cfg.precision, "workers": _workers(cfg, precision.device),
        "world_size": info.world_size, "local_batch_size": _local_batch(cfg, info), "input_stats": stats,
        "recipe_description": describe(cfg),
    }
    env = runs.environment_info(cfg.seed)
    env.update(device=str(precision.device), precision=precision.name, world_size=info.world_size)
    return config, env


def _local_batch(cfg: TrainConfig, info) -> int:
    return max(1, cfg.batch_size // info.world_size)


def _schedule(cfg: TrainConfig) -> PaperSchedule | FixedSchedule:
    if cfg.schedule == "plateau":
        return PaperSchedule(lr=cfg.lr, factor=cfg.lr_factor, patience=cfg.patience, decreases=cfg.lr_decreases)
    return FixedSchedule(kind=cfg.schedule, base_lr=cfg.lr, epochs=cfg.epochs, factor=cfg.lr_factor,
                         steps=tuple(int(s) for s in cfg.lr_steps), warmup=cfg.warmup_epochs)


def _new_state(setup: Setup, precision: StepPrecision) -> TrainState:
    cfg = setup.cfg

    def optimizer(model, lr):
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)

    setup.net.to(precision.device)
    return TrainState(model=setup.net, new_optimizer=optimizer, schedule=_schedule(cfg), precision=precision)


def _fit(setup: Setup, run: Run, precision: StepPrecision, info, job: Job) -> Path:
    state = _new_state(setup, precision)
    if run.resumable(job.resume):
        ckpt = run.resume(state)
        if setup.cfg.select == "best":  # under --select last/swa, _SelectHook rewrites best.pt anyway
            run.repair_best(state, ckpt)
        if info.is_main:
            job.console.print(f"Resuming {run.path} after epoch {state.epoch}", highlight=False)
    runner = SegmentRunner(setup, precision, info, job.console)
    store, select = setup.store, setup.cfg.select
    save = dict(model_name=setup.cfg.model, model_kwargs=setup.model_kwargs, label_names=store.label_names,
                task=store.task, sample_rate=store.sample_rate)
    chosen = [] if select == "best" else [_SelectHook(setup.cfg, run.folder, save, runner)]
    hooks = run.hooks(runner.console, save, write_best=select == "best", before_checkpoints=chosen)
    if state.stop_reason is None:
        runner.announce(run.folder)
    fit(state, runner, [*hooks, _BarrierHook(info)], setup.cfg.epochs)
    run.finish(summary(state, "train", setup.cfg.model, info.world_size))
    return run.path


class _SelectHook(Hook):
    """best.pt under --select last or swa (rank 0). After every epoch: the epoch's weights; under swa the
    epochs of the schedule's last `swa_epochs` are also folded into the state's average (kept in last.pt).
    At the end, swa: the average, its batch-norm statistics recomputed over one pass of the training
    segments (averaged weights make the running statistics of any one epoch wrong)."""

    def __init__(self, cfg: TrainConfig, run_dir: runs.RunDir, save: dict, runner: SegmentRunner):
        self.cfg, self.run_dir, self.save, self.runner = cfg, run_dir, save, runner

    def epoch(self, state, result):
        cfg = self.cfg
        if cfg.select == "swa" and result.epoch > cfg.epochs - cfg.swa_epochs \
                and result.epoch not in state.averaged_epochs:
            state.add_to_average()
        self._write(state.model.state_dict(), {"epoch": result.epoch, "select": "last"})

    def end(self, state):
        if self.cfg.select == "swa" and state.averaged_epochs:
            model = copy.deepcopy(state.model)
            model.load_state_dict(state.average)
            recompute_batch_norm(model, self.runner.loader, state.precision)
            self._write(model.state_dict(), {"epoch": state.epoch, "select": "swa",
                                             "averaged_epochs": list(state.averaged_epochs)})
            log.info("best.pt: the mean of epochs %s, batch norm recomputed", state.averaged_epochs)
        else:
            self._write(state.model.state_dict(), {"epoch": state.epoch, "select": "last"})

    def _write(self, weights: dict, extra: dict) -> None:
        runs.save_checkpoint(self.run_dir.best, state_dict=weights, extra=extra, **self.save)


def recompute_batch_norm(model: torch.nn.Module, batches, precision: StepPrecision) -> None:
    """Batch-norm running statistics of `model` recomputed as the plain mean over `batches` of
    (inputs, ...) in training mode, without gradients (what torch.optim.swa_utils.update_bn does)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean over the batches
    was_training = model.training
    model.train()
    with torch.no_grad():
        for batch in batches:
            with precision.autocast():
                model(batch[0].to(precision.device, non_blocking=True))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


class _BarrierHook(Hook):
    """Every rank waits for rank 0's checkpoint and metrics of the epoch."""

    def __init__(self, info):
        self.info = info

    def epoch(self, state, result):
        dist_util.barrier(self.info)


class SegmentRunner:
    """One epoch over the training segments (this rank's share) and validation on rank 0."""

    unit = "segments"

    def __init__(self, setup: Setup, precision: StepPrecision, info, console):
        self.setup, self.precision, self.info, self.console = setup, precision, info, console
        cuda, workers, batch = precision.device.type == "cuda", _workers(setup.cfg, precision.device), \
            _local_batch(setup.cfg, info)
        self.model = torch.nn.parallel.DistributedDataParallel(setup.net) if info.enabled else setup.net
        self.loader = segment_loader(setup.train_set, batch_size=batch, shuffle=True, seed=setup.cfg.seed,
                                     world_size=info.world_size, rank=info.rank, workers=workers, pin_memory=cuda)
        self.valid_batch = max(batch, 64)
        self.loss_of = task_loss(setup.store.task)

    def announce(self, run_dir: runs.RunDir) -> None:
        s, net, info = self.setup, self.setup.net, self.info
        seen = " from train + valid: validation figures are not held out" if "valid" in s.cfg.train_splits else ""
        if info.is_main:
            self.console.print(
                f"Training {s.cfg.model} ({net.num_params():,} params) on {s.store.directory} "
                f"({len(s.train_set):,} training segments of {net.input_samples:,} samples{seen}), "
                f"{self.precision.device.type}, {self.precision.name}, batch {s.cfg.batch_size}"
                f"{f' ({info.world_size} processes)' if info.enabled else ''} -> {run_dir.path}", highlight=False)

    def train_epoch(self, state: TrainState) -> tuple[float, int]:
        set_epoch(self.loader, state.epoch)
        self.model.train()
        total, steps, seen = 0.0, 0, 0
        with EpochProgress(self.console, state.epoch, len(self.loader), enabled=self.info.is_main) as bar:
            for batch in self.loader:
                value = train_step(self.model, state.optimizer, state.precision, self.loss_of, batch).item()
                if not math.isfinite(value):
                    raise RunError(f"training loss became {value} at epoch {state.epoch}",
                                   hint="lower --lr, or use --precision fp32")
                total, steps, seen = total + value, steps + 1, seen + batch[0].shape[0]
                bar.advance(total / steps, seen * self.info.world_size)
        loss, = dist_util.all_reduce_mean(self.info, [total / max(steps, 1)], state.precision.device)
        return loss, epoch_segments(self.loader) * self.info.world_size

    def validate(self, state: TrainState) -> dict:
        valid = None
        if self.info.is_main:
            valid = validate_clips(state.model, self.setup.store.split("valid"), state.precision,
                                   batch_size=self.valid_batch, label_names=self.setup.store.label_names)
        return dist_util.broadcast(self.info, valid)
