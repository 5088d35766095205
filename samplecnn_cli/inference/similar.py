"""Similar tracks: rank a library's files by the cosine similarity of the embeddings `samplecnn embed` wrote.

The library is the embedding file (inference/embeddings.py): its /paths and /embedding (N, 512), the mean
over windows of the penultimate layer. Rows are scaled to length 1 once, so one matrix-vector product
scores every file against a query: a linear scan, about 0.1 s for 100,000 files
(benchmarks/bench_similar.py). A query is a file of the library (its stored row; the file itself is left
out of its results) or any audio file, embedded through the run that wrote the library, with the same
hop and precision, so its vector is comparable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import DataError, RunError, UsageError

EMBEDDINGS_FORMAT = "samplecnn-embeddings"  # inference/embeddings.py FORMAT, read without importing the writer


@dataclass
class EmbeddingLibrary:
    path: Path
    paths: list[str]
    unit: np.ndarray  # (N, 512) float32, every row of length 1 (a zero row stays zero)
    attrs: dict
    rows: dict[str, int] = field(default_factory=dict)  # path -> row

    def __post_init__(self):
        if not self.rows:
            # built from the end, so a path listed twice maps to its first row
            self.rows = dict(zip(reversed(self.paths), range(len(self.paths) - 1, -1, -1), strict=True))

    def row_of(self, file: Path) -> int | None:
        """The row of `file` (paths are stored resolved), None when it is not in the library."""
        return self.rows.get(str(Path(file).resolve()))


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its length, in place where possible (float32)."""
    matrix = np.asarray(matrix, np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms[norms == 0] = 1.0
    matrix /= norms[:, None]
    return matrix


def open_library(path: Path) -> EmbeddingLibrary:
    """Read an embedding file written by `samplecnn embed`; DataError when it is not one."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no embedding file at {path}", hint="write one with `samplecnn embed RUN FOLDER --out EMB.h5`")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != EMBEDDINGS_FORMAT:
                raise DataError(f"{path} is not an embedding file (format {f.attrs.get('format')!r})",
                                hint="write one with `samplecnn embed RUN FOLDER --out EMB.h5`")
            paths = f["paths"].asstr()[:].tolist()
            matrix = f["embedding"][:]
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read {path} as an embedding file: {exc}") from None
    if matrix.ndim != 2 or matrix.shape[0] != len(paths):
        raise DataError(f"{path} is damaged: {len(paths)} paths but embeddings of shape {matrix.shape}")
    if not paths:
        raise DataError(f"{path} holds no embeddings (every file failed when it was written)")
    return EmbeddingLibrary(path, paths, unit_rows(matrix), attrs)


def rank(library: EmbeddingLibrary, query: np.ndarray, top: int, exclude: int | None = None) -> list[dict]:
    """The `top` most similar files to the vector `query`, best first: path, similarity (cosine)."""
    query = unit_rows(np.array(query, np.float32)[None])[0]
    similarity = library.unit @ query
    if exclude is not None:
        similarity[exclude] = -np.inf
    count = min(top, len(similarity) - (exclude is not None))
    if count <= 0:
        return []
    best = np.argpartition(-similarity, count - 1)[:count]
    best = best[np.argsort(-similarity[best], kind="stable")]
    return [{"rank": r + 1, "path": library.paths[i], "similarity": round(float(similarity[i]), 6)}
            for r, i in enumerate(best)]


def similar(library: EmbeddingLibrary, queries: list[Path], *, top: int = 10, runtime=None,
            workers: int | None = None, cache: Path | None = None) -> list[dict]:
    """One entry per query, in order: query, in_library, results (or error for an unreadable file).
    `runtime` (core.runtime.Runtime) runs the model for queries outside the library."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    found = {str(q): library.row_of(q) for q in queries}
    outside = [q for q in queries if found[str(q)] is None]
    vectors = embed_queries(library, outside, runtime=runtime, workers=workers, cache=cache) if outside else {}
    entries = []
    for q in queries:
        row = found[str(q)]
        if row is not None:
            entries.append({"query": str(q), "in_library": True,
                            "results": rank(library, library.unit[row], top, exclude=row)})
        elif isinstance(vectors[str(q)], str):
            entries.append({"query": str(q), "in_library": False, "error": vectors[str(q)]})
        else:
            entries.append({"query": str(q), "in_library": False, "results": rank(library, vectors[str(q)], top)})
    return entries


def embed_queries(library: EmbeddingLibrary, files: list[Path], *, runtime=None, workers: int | None = None,
                  cache: Path | None = None) -> dict[str, np.ndarray | str]:
    """Each file's embedding through the run that wrote the library (its hop; its precision unless
    `runtime` says otherwise), or the reason it could not be read."""
    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.inference.library import load_library_model
    from samplecnn_cli.inference.predictor import decoded_files

    run = library.attrs.get("run")
    if not run or not Path(run).is_dir():
        raise RunError(f"the run that wrote {library.path} is not at {run}",
                       hint="queries that are files of the library need no model; others need that run")
    runtime = runtime or Runtime.resolve("auto", str(library.attrs.get("precision", "fp32")))
    model = load_library_model(run, runtime, cache=cache)
    if list(json.loads(library.attrs.get("label_names", "[]"))) not in ([], model.labels):
        raise RunError(f"the run at {run} is not the one that wrote {library.path} (its labels differ)")
    hop = model.hop_samples(float(library.attrs.get("hop_seconds") or 0) or None)
    clips = decoded_files(files, model.predictor.sample_rate, workers)
    return {str(f): (r.embedding if r.error is None else r.error)
            for f, r in zip(files, model.predictor.run(clips, ["embedding"], hop=hop), strict=True)}
