"""Filter visualisation of a run directory: figures and filters.json (what `visualize-filters` calls)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import RunError, UsageError
from samplecnn_cli.runs.folder import load_run, write_json
from samplecnn_cli.viz import filters as F

FILTERS_JSON = "filters.json"


def _load_waveform_run(run_dir: Path):
    loaded = load_run(run_dir)
    if loaded.kind != "train" or not hasattr(loaded.model, "conv_layers"):
        raise RunError(f"{run_dir} is a {loaded.kind} run: it has no conv filters to visualise",
                       hint="pass a run written by `samplecnn train`")
    return loaded


def visualize_run(run_dir: Path, layer_spec: str = "1", filter_spec: str | None = "all", *,
                  input_samples: int = F.DEFAULT_INPUT_SAMPLES, steps: int = F.DEFAULT_STEPS,
                  step_size: float = F.DEFAULT_STEP_SIZE, seed: int = 0, out_dir: Path | None = None,
                  svg: bool = True, progress=None, method: str = "auto") -> dict:
    """What the chosen layers' filters respond to (layer 1: its weights' frequency responses by default,
    deeper layers: gradient ascent); writes Figures 2 and 3 per layer and filters.json."""
    from samplecnn_cli.viz import figures

    run_dir = Path(run_dir)
    loaded = _load_waveform_run(run_dir)
    model = loaded.model
    layers = F.parse_layers(layer_spec, F.num_conv_layers(model))
    if not F.has_learned_front(model) and 1 in layers:
        if str(layer_spec).strip().lower() == "all":
            layers = [n for n in layers if n != 1]  # 'all' means every learned conv layer
        else:
            F.check_layer(model, 1)
    sample_rate = int(loaded.sample_rate or model.sample_rate)
    out_dir = Path(out_dir) if out_dir else run_dir / "filters"
    summary = {"run_dir": str(run_dir), "model": loaded.model_name, "sample_rate": sample_rate, "seed": seed,
               "steps": steps, "step_size": step_size, "objective": "mean response after BN, before ReLU/pool",
               "out_dir": str(out_dir), "layers": []}
    for layer in layers:
        chosen = F.parse_filters(filter_spec, F.layer_channels(model, layer))
        layer_method = F.resolve_method(model, layer, method)
        if progress and layer_method == "ascent":  # reading the weights is instant
            progress(f"layer {layer}: {len(chosen)} filters (gradient ascent)")
        result = F.layer_filters(model, layer, chosen, method=layer_method, input_samples=input_samples,
                                 steps=steps, step_size=step_size, seed=seed, sample_rate=sample_rate)
        stem = out_dir / f"layer{layer}"
        wave_paths = figures.save_figure(figures.waveforms_figure(result, loaded.model_name),
                                         stem.with_name(f"layer{layer}-waveforms"), svg=svg)
        spec_paths = figures.save_figure(figures.spectra_figure(result, loaded.model_name),
                                         stem.with_name(f"layer{layer}-spectra"), svg=svg)
        np.savez_compressed(_tmp_npz(out_dir, layer), waveforms=result.waveforms, spectra=result.spectra,
                            freqs_hz=result.freqs_hz, filters=np.asarray(result.filters), order=result.order)
        _tmp_npz(out_dir, layer).replace(out_dir / f"layer{layer}.npz")
        summary["layers"].append({
            "layer": layer, "method": layer_method, "num_filters": len(chosen), "input_samples": result.input_samples,
            "note": F.linear_front_note(model, sample_rate, layer_method) if layer == 1 else "",
            "figures": {"waveforms": [p.name for p in wave_paths], "spectra": [p.name for p in spec_paths]},
            "filters": result.sorted_rows(),
        })
    write_json(out_dir / FILTERS_JSON, summary)
    return summary


def _tmp_npz(out_dir: Path, layer: int) -> Path:
    return out_dir / f".layer{layer}.tmp.npz"


def compare_runs(run_dirs: list[Path], layer_spec: str = "1-4", *, input_samples: int = F.DEFAULT_INPUT_SAMPLES,
                 steps: int = F.DEFAULT_STEPS, step_size: float = F.DEFAULT_STEP_SIZE, seed: int = 0,
                 out_dir: Path, svg: bool = True, progress=None) -> dict:
    """Figure 4: spectra of each run's layers side by side, runs ordered by sample rate."""
    from samplecnn_cli.viz import figures

    if len(run_dirs) < 1:
        raise UsageError("--compare needs at least one run directory")
    loaded_runs = [_load_waveform_run(Path(d)) for d in run_dirs]
    loaded_runs.sort(key=lambda r: int(r.sample_rate or r.model.sample_rate))
    columns, summary = [], {"out_dir": str(out_dir), "seed": seed, "steps": steps, "runs": []}
    for loaded in loaded_runs:
        model = loaded.model
        sr = int(loaded.sample_rate or model.sample_rate)
        layers = [n for n in F.parse_layers(layer_spec, F.num_conv_layers(model))
                  if n != 1 or F.has_learned_front(model)]
        results = {}
        for layer in layers:
            if progress:
                progress(f"{loaded.run_dir.name}: layer {layer}")
            results[layer] = F.layer_filters(model, layer, input_samples=input_samples, steps=steps,
                                             step_size=step_size, seed=seed, sample_rate=sr)
        columns.append((f"{loaded.model_name} @ {sr:,} Hz", results))
        summary["runs"].append({"run_dir": str(loaded.run_dir), "model": loaded.model_name, "sample_rate": sr,
                                "layers": [{"layer": n, "peak_hz_sorted": [round(float(results[n].peak_hz[i]), 3)
                                                                            for i in results[n].order]}
                                           for n in layers]})
    paths = figures.save_figure(figures.compare_figure(columns), Path(out_dir) / "figure4", svg=svg)
    summary["figures"] = [p.name for p in paths]
    write_json(Path(out_dir) / "compare.json", summary)
    return summary
