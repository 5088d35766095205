"""Filter visualisation: layer/filter parsing, gradient ascent and its spectra, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.models.registry import create_model
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.viz import filters as F

runner = CliRunner()
LABELS = ["low", "high"]


def _briefly_trained(name: str, sample_rate: int, **kwargs):
    """A few SGD steps on two tones, so the filters are not just their random initialisation."""
    torch.manual_seed(0)
    model = create_model(name, num_outputs=len(LABELS), sample_rate=sample_rate, **kwargs)
    t = torch.arange(model.input_samples) / sample_rate
    x = torch.stack([torch.sin(2 * torch.pi * f * t + p) for f in (sample_rate / 20, sample_rate / 5)
                     for p in (0.0, 1.0)])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimiser.step()
    return model.eval()


def make_run(run_dir, name: str = "sample-3^4", sample_rate: int = 8000, **kwargs):
    model = _briefly_trained(name, sample_rate, **kwargs)
    model_kwargs = {"num_outputs": len(LABELS), "sample_rate": sample_rate, **kwargs}
    runs.write_config(run_dir, {"kind": "train", "model": name, "model_kwargs": model_kwargs,
                                "label_names": LABELS, "task": "multilabel", "sample_rate": sample_rate})
    runs.save_checkpoint(run_dir / "checkpoints" / "best.pt", model_name=name, model_kwargs=model_kwargs,
                         state_dict=model.state_dict(), label_names=LABELS, task="multilabel",
                         sample_rate=sample_rate)
    runs.mark_status(run_dir, runs.DONE)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("viz") / "run")


@pytest.fixture(scope="module")
def model(run_dir):
    return runs.load_run(run_dir).model


# -- parsing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expected"), [("4", [4]), ("1,2,3", [1, 2, 3]), ("1-4", [1, 2, 3, 4]),
                                                 ("all", [1, 2, 3, 4, 5]), ("3-4,1", [1, 3, 4]), (" 2 ", [2])])
def test_parse_layers(spec, expected):
    assert F.parse_layers(spec, 5) == expected


@pytest.mark.parametrize("spec", ["0", "6", "x", "4-2", "1-9", "", "1,,2"])
def test_parse_layers_rejects(spec):
    with pytest.raises(UsageError):
        F.parse_layers(spec, 5)


def test_parse_filters():
    assert F.parse_filters("all", 4) == [0, 1, 2, 3]
    assert F.parse_filters("3,1", 4) == [1, 3]
    for bad in ("4", "a", ","):
        with pytest.raises(UsageError):
            F.parse_filters(bad, 4)


# -- gradient ascent ---------------------------------------------------------------------------------
def test_one_sorted_spectrum_per_filter_within_nyquist(model):
    result = F.gradient_ascent(model, 2, steps=6, seed=1, sample_rate=8000)
    assert result.waveforms.shape == (128, 729)
    assert result.spectra.shape == (128, 729 // 2 + 1)
    assert result.freqs_hz[0] == 0 and result.freqs_hz[-1] == pytest.approx(4000, abs=8000 / 729)
    rows = result.sorted_rows()
    assert sorted(r["filter"] for r in rows) == list(range(128))
    peaks = [r["peak_hz"] for r in rows]
    assert peaks == sorted(peaks)
    assert 0 <= peaks[0] and peaks[-1] <= 4000
    # each peak really is the largest bin of that filter's spectrum
    i = int(result.order[-1])
    assert result.freqs_hz[np.argmax(result.spectra[i])] == pytest.approx(result.peak_hz[i])
    # the ascent raised the target responses above the starting noise's
    assert np.sqrt(np.mean(result.waveforms ** 2)) > 10 * F.NOISE_STD


def test_ascent_increases_the_filter_response(model):
    before = F.gradient_ascent(model, 3, [0, 7], steps=1, seed=0)
    after = F.gradient_ascent(model, 3, [0, 7], steps=8, seed=0)
    with torch.no_grad():
        def response(r):
            out = F.layer_response(model, torch.tensor(r.waveforms, dtype=torch.float32), 3)
            return [float(out[k, f].mean()) for k, f in enumerate(r.filters)]
    assert all(a > b for a, b in zip(response(after), response(before), strict=True))


def test_deterministic_with_seed(model):
    a = F.gradient_ascent(model, 1, steps=3, seed=5)
    b = F.gradient_ascent(model, 1, steps=3, seed=5)
    c = F.gradient_ascent(model, 1, steps=3, seed=6)
    assert np.array_equal(a.waveforms, b.waveforms)
    assert not np.allclose(a.waveforms, c.waveforms)


def test_input_is_raised_to_the_receptive_field(model):
    assert F.gradient_ascent(model, 4, [0], input_samples=10, steps=1).input_samples == 27


def test_mel_models_have_no_layer_one():
    mel = create_model("frame-mel-729", num_outputs=2)
    with pytest.raises(UsageError, match="mel"):
        F.gradient_ascent(mel, 1)
    raw = create_model("frame-raw-729", num_outputs=2).eval()
    assert F.gradient_ascent(raw, 1, [0, 1], steps=2).waveforms.shape == (2, 729)


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_json_and_files(run_dir, tmp_path):
    out = tmp_path / "figs"
    result = runner.invoke(app, ["visualize-filters", str(run_dir), "--layer", "1-2", "--filters", "0,3,5",
                                 "--steps", "3", "--seed", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [e["layer"] for e in data["layers"]] == [1, 2]
    assert len(data["filters"]) == 6
    for layer in (1, 2):
        rows = [r for r in data["filters"] if r["layer"] == layer]
        assert sorted(r["filter"] for r in rows) == [0, 3, 5]
        assert [r["peak_hz"] for r in rows] == sorted(r["peak_hz"] for r in rows)
        for kind in ("waveforms", "spectra"):
            for ext in ("png", "svg"):
                assert (out / f"layer{layer}-{kind}.{ext}").stat().st_size > 1000
    saved = json.loads((out / "filters.json").read_text())
    assert saved["layers"][0]["filters"] == [r for r in data["filters"] if r["layer"] == 1]


def test_cli_latest_run_and_default_out(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    make_run(ws / "runs" / "r1")
    monkeypatch.setenv("SAMPLECNN_WORKSPACE", str(ws))
    result = runner.invoke(app, ["visualize-filters", "--layer", "1", "--filters", "0,1", "--steps", "2",
                                 "--no-svg"])
    assert result.exit_code == 0, result.output
    assert "latest run" in result.output and "r1" in result.output
    assert (ws / "runs" / "r1" / "filters" / "layer1-spectra.png").is_file()
    assert not (ws / "runs" / "r1" / "filters" / "layer1-spectra.svg").exists()


@pytest.mark.parametrize(("args", "code", "text"), [
    (["--layer", "9"], 2, "layer 9"),
    (["--layer", "one"], 2, "--layer"),
    (["--filters", "500"], 2, "filter 500"),
])
def test_cli_bad_layer_or_filter(run_dir, args, code, text):
    result = runner.invoke(app, ["visualize-filters", str(run_dir), *args])
    assert result.exit_code == code
    assert text in result.output
    assert "Traceback" not in result.output


def test_cli_bad_run_dir(tmp_path):
    assert runner.invoke(app, ["visualize-filters", str(tmp_path / "missing")]).exit_code == 2
    result = runner.invoke(app, ["visualize-filters", str(tmp_path)])
    assert result.exit_code == 1 and "config.toml" in result.output


def test_cli_mel_layer_one_is_a_usage_error(tmp_path):
    run = tmp_path / "mel"
    model = create_model("frame-mel-729", num_outputs=2, sample_rate=8000)
    kwargs = {"num_outputs": 2, "sample_rate": 8000}
    runs.write_config(run, {"kind": "train", "model": "frame-mel-729", "model_kwargs": kwargs,
                            "label_names": LABELS, "task": "multilabel", "sample_rate": 8000})
    runs.save_checkpoint(run / "checkpoints" / "best.pt", model_name="frame-mel-729", model_kwargs=kwargs,
                         state_dict=model.state_dict(), label_names=LABELS, task="multilabel", sample_rate=8000)
    result = runner.invoke(app, ["visualize-filters", str(run), "--layer", "1"])
    assert result.exit_code == 2 and "mel" in result.output


def test_cli_compare_figure4(run_dir, tmp_path):
    fast = make_run(tmp_path / "r16k", sample_rate=16000)
    out = tmp_path / "fig4"
    result = runner.invoke(app, ["visualize-filters", "--compare", str(fast), str(run_dir), "--layer", "1-2",
                                 "--steps", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["sample_rate"] for r in data["runs"]] == [8000, 16000]  # ordered by rate
    for entry in data["runs"]:
        for layer in entry["layers"]:
            peaks = layer["peak_hz_sorted"]
            assert peaks == sorted(peaks) and peaks[-1] <= entry["sample_rate"] / 2
    assert (out / "figure4.png").stat().st_size > 1000
    assert json.loads((out / "compare.json").read_text())["runs"] == data["runs"]


# -- layer 1: linear up to its ReLU, so it is read from its weights (issue 14) -----------------------
def test_layer1_weight_response_is_the_filters_frequency_response():
    model = create_model("sample-3^4", num_outputs=2, sample_rate=8000).eval()
    with torch.no_grad():
        model.front[0].weight[:3, 0, :] = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 0.0, -1.0]])
    result = F.weight_response(model, [0, 1, 2], sample_rate=8000)
    assert result.method == "weights" and result.waveforms.shape == (3, 3)
    # low-pass peaks at 0 Hz, alternating signs at sr/2, a difference at sr/4
    assert result.peak_hz.tolist() == pytest.approx([0.0, 4000.0, 2000.0])
    assert [result.filters[i] for i in result.order] == [0, 2, 1]
    bn = model.front[1]
    gain = float(bn.weight[0].detach() / torch.sqrt(bn.running_var[0] + bn.eps))
    assert result.spectra[0, 0] == pytest.approx(3 * abs(gain), rel=1e-5)  # |H(0)| = sum of taps x BN gain


def test_layer1_gradient_ascent_only_finds_sr_over_3(model):
    """Why the default is not gradient ascent at layer 1: every filter's result peaks at sr/3."""
    result = F.gradient_ascent(model, 1, steps=6, seed=0, sample_rate=8000)
    assert np.allclose(result.peak_hz, 8000 / 3, atol=8000 / 729)
    weights = F.layer_filters(model, 1, sample_rate=8000)  # auto
    assert weights.method == "weights" and len(set(np.round(weights.peak_hz))) > 3


def test_layer1_figures_say_why(model):
    from samplecnn_cli.viz import figures

    for result in (F.layer_filters(model, 1, sample_rate=8000), F.gradient_ascent(model, 1, steps=2)):
        fig = figures.spectra_figure(result, "m")
        text = " ".join(t.get_text() for t in fig.texts)
        assert "linear up to its ReLU" in text and "sr/3 = 2,667 Hz" in text
    fig = figures.spectra_figure(F.gradient_ascent(model, 2, [0, 1], steps=2, sample_rate=8000), "m")
    assert "comes from layer 1's stride of 3" in " ".join(t.get_text() for t in fig.texts)



def test_cli_default_is_weights_and_method_is_checked(run_dir, tmp_path):
    result = runner.invoke(app, ["visualize-filters", str(run_dir), "--out", str(tmp_path / "d"), "--json"])
    assert result.exit_code == 0, result.output
    layer = json.loads(result.stdout)["layers"][0]
    assert layer["layer"] == 1 and layer["method"] == "weights" and "sr/3" in layer["note"]
    asc = runner.invoke(app, ["visualize-filters", str(run_dir), "--method", "ascent", "--steps", "2",
                              "--out", str(tmp_path / "a"), "--json"])
    assert json.loads(asc.stdout)["layers"][0]["method"] == "ascent"
    bad = runner.invoke(app, ["visualize-filters", str(run_dir), "--layer", "2", "--method", "weights"])
    assert bad.exit_code == 2 and "layer 1 only" in bad.stderr
    helped = runner.invoke(app, ["visualize-filters", "--help"], env={"COLUMNS": "200"})
    shown = " ".join(helped.stdout.replace("│", " ").split())  # whatever the wrapping
    assert "linear up to its ReLU" in shown and "0 and sr/3" in shown
