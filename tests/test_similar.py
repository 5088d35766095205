"""`samplecnn similar`: cosine ranking over the embeddings `embed` wrote; queries from the library or any audio
file (embedded through the same run); table, --json and --csv."""

from __future__ import annotations

import csv
import io
import json
import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.inference.similar import EmbeddingLibrary, rank, unit_rows
from tests.test_features_extract import fake_run

pytestmark = pytest.mark.usefixtures("inference_sandbox")
runner = CliRunner()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A fake run, six audio files in a folder with a long name and a space, and their embedding file."""
    root = tmp_path_factory.mktemp("sim")
    run = fake_run(root / "run", "sample-3^3")
    folder = root / ("a folder with a rather long name to test that paths stay whole " * 2).strip()
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(6):
        tone = np.sin(2 * np.pi * (200 + 150 * i) * np.arange(2000) / 8000)
        sf.write(folder / f"track {i}.wav", (0.3 * tone + 0.05 * rng.standard_normal(2000)).astype(np.float32), 8000)
    emb = root / "emb.h5"
    result = runner.invoke(app, ["embed", str(run), str(folder), "--out", str(emb), "-j", "0", "--json"])
    assert result.exit_code == 0, result.output
    return {"run": run, "folder": folder, "emb": emb, "root": root}


def cosine_order(emb_path, query_vector):
    with h5py.File(emb_path, "r") as f:
        paths = f["paths"].asstr()[:].tolist()
        matrix = f["embedding"][:].astype(np.float64)
    sims = matrix @ query_vector / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query_vector))
    return paths, sims


def test_library_query_ranks_by_cosine_and_leaves_itself_out(library):
    query = library["folder"] / "track 2.wav"
    result = runner.invoke(app, ["similar", str(library["emb"]), str(query), "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert entry["in_library"] and [r["rank"] for r in entry["results"]] == [1, 2, 3]
    with h5py.File(library["emb"], "r") as f:
        row = f["paths"].asstr()[:].tolist().index(str(query.resolve()))
        vector = f["embedding"][row].astype(np.float64)
    paths, sims = cosine_order(library["emb"], vector)
    expected = [i for i in np.argsort(-sims) if i != row][:3]
    assert [r["path"] for r in entry["results"]] == [paths[i] for i in expected]
    np.testing.assert_allclose([r["similarity"] for r in entry["results"]], sims[expected], atol=1e-5)


def test_any_audio_file_is_embedded_through_the_run(library, tmp_path):
    copy = tmp_path / "elsewhere.wav"
    shutil.copy(library["folder"] / "track 4.wav", copy)
    result = runner.invoke(app, ["similar", str(library["emb"]), str(copy), "-k", "2", "--json", "-j", "0"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert not entry["in_library"]
    best = entry["results"][0]
    assert best["path"].endswith("track 4.wav") and best["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_csv_and_table_keep_every_path_whole(library):
    queries = [str(library["folder"] / "track 0.wav"), str(library["folder"] / "track 5.wav")]
    result = runner.invoke(app, ["similar", str(library["emb"]), *queries, "--top", "10", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["query"] for r in rows] == [queries[0]] * 5 + [queries[1]] * 5  # 10 asked, 5 others there
    assert all(r["path"].startswith(str(library["folder"])) for r in rows)
    table = runner.invoke(app, ["similar", str(library["emb"]), queries[0]], env={"COLUMNS": None})
    assert table.exit_code == 0, table.output
    whole = [line for line in table.stdout.splitlines() if str(library["folder"]) in line]
    assert len(whole) == 1 + 5  # the heading and five rows, each path on one line


def test_bad_library_and_unreadable_query(library, tmp_path):
    not_embeddings = tmp_path / "x.h5"
    with h5py.File(not_embeddings, "w") as f:
        f.attrs["format"] = "samplecnn-features"
    result = runner.invoke(app, ["similar", str(not_embeddings), "a.wav"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and "not an embedding file" in result.stderr
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    result = runner.invoke(app, ["similar", str(library["emb"]), str(broken), "-j", "0"])
    assert result.exit_code == 1 and f"Skipped {broken}" in result.stderr.replace("\n", "")
    result = runner.invoke(app, ["similar", str(library["emb"]), str(broken), "--top", "0"])
    assert result.exit_code == 2 and "--top must be at least 1" in result.stderr


def test_rank_handles_ties_zero_rows_and_small_libraries():
    matrix = unit_rows(np.array([[1, 0], [0, 0], [1, 0], [0, 1]], np.float32))
    lib = EmbeddingLibrary(None, ["a", "zero", "b", "c"], matrix, {})
    assert lib.rows == {"a": 0, "zero": 1, "b": 2, "c": 3}
    got = rank(lib, np.array([2.0, 0.0]), top=10)
    assert [r["path"] for r in got] == ["a", "b", "zero", "c"] or [r["path"] for r in got] == ["a", "b", "c", "zero"]
    assert [r["similarity"] for r in got][:2] == [1.0, 1.0] and got[-1]["similarity"] == 0.0
    assert [r["path"] for r in rank(lib, matrix[0], top=1, exclude=0)] == ["b"]
