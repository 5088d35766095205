"""`samplecnn doctor`: what a user needs to know before a long job, checked on this machine.

Each check is a `Check` (name, status ok|warn|error, what was found). Compiled packages are loaded in
child processes, in parallel, so a library that crashes on import (an undefined symbol, a segfault)
is reported as that package's error instead of ending the doctor.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from samplecnn_cli import __version__
from samplecnn_cli.core.context import Context
from samplecnn_cli.runs.folder import installed_version as _version

# distribution -> (import check run in a child process, required by samplecnn?)
PACKAGES: dict[str, tuple[str, bool]] = {
    "torch": ("import torch; torch.nn.functional.conv1d(torch.ones(1, 1, 9), torch.ones(1, 1, 3))", True),
    "numpy": ("import numpy; numpy.linalg.svd(numpy.ones((3, 3)))", True),
    "h5py": ("import h5py, io; h5py.File(io.BytesIO(), 'w').create_dataset('x', data=[1])", True),
    "soundfile": ("import soundfile; assert 'MP3' in soundfile.available_formats(), 'libsndfile without MP3'", True),
    "soxr": ("import soxr, numpy; soxr.resample(numpy.zeros(800, 'float32'), 8000, 16000)", True),
    "scikit-learn": ("from sklearn.metrics import roc_auc_score; roc_auc_score([0, 1], [0.1, 0.9])", True),
    "matplotlib": ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot", True),
    "onnxruntime": ("import onnxruntime; onnxruntime.get_available_providers()", False),
    "torchaudio": ("import torchaudio, torch; torchaudio.transforms.MelSpectrogram()(torch.zeros(1, 800))", False),
}
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
LOAD_TIMEOUT_S = 120


@dataclass
class Check:
    name: str
    status: str  # ok | warn | error
    detail: str


def run_checks(context: Context) -> list[Check]:
    """Every check, in the order they are printed."""
    checks = [Check("samplecnn", "ok", f"{__version__} (Python {platform.python_version()}, {sys.executable})")]
    checks += package_checks()
    if not any(c.name == "torch" and c.status == "error" for c in checks):
        checks += cpu_checks() + cuda_checks()
    checks += [ffmpeg_check(), cache_check(context.inference_cache), workspace_check(context.workspace)]
    return checks


def _loads(code: str) -> str | None:
    """None when `code` runs in a fresh interpreter, else the last line it printed on stderr."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"loading took more than {LOAD_TIMEOUT_S} s"
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"the interpreter exited with code {proc.returncode}"


def package_checks() -> list[Check]:
    versions = {name: _version(name) for name in PACKAGES}
    installed = [name for name in PACKAGES if versions[name]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = dict(zip(installed, pool.map(lambda n: _loads(PACKAGES[n][0]), installed), strict=True))
    torch_version = versions["torch"] or "?"
    checks = []
    for name, (_, required) in PACKAGES.items():
        version = versions[name]
        if version is None:
            status = "error" if required else "ok"
            detail = "not installed" + ("" if required else " (optional)")
        elif failures[name] is None:
            status, detail = "ok", f"{version}, loads"
        else:
            # an optional package that does not load harms nothing samplecnn runs: a warning
            status = "error" if required else "warn"
            with_torch = "" if name == "torch" else f" with torch {torch_version}"
            detail = f"{version} does not load{with_torch}: {failures[name]}"
        checks.append(Check(name, status, detail))
    return checks


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def cpu_checks() -> list[Check]:
    import torch

    from samplecnn_cli.core.runtime import Runtime

    flags = cpu_flags()
    present = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS) if flags else "unknown"
    forced = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if os.environ.get(k)}
    isa = torch.backends.cpu.get_cpu_capability()
    isa_detail = f"PyTorch kernels {isa}, {torch.get_num_threads()} threads, {os.cpu_count()} logical CPUs"
    if forced:
        isa_detail += " (forced: " + ", ".join(f"{k}={v}" for k, v in forced.items()) + ")"
    runtime = Runtime.resolve("cpu", "auto")
    train = runtime.precision
    choices = runtime.inference_precisions()
    infer = " or ".join(choices) + (", whichever is faster (measured once)" if len(choices) > 1 else "")
    return [Check("cpu", "ok", f"{platform.machine()}: {present}"),
            Check("cpu kernels", "ok", isa_detail),
            Check("precision auto", "ok", f"training {train}; inference {infer}")]


def cuda_checks() -> list[Check]:
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        return [Check("cuda", "ok", f"no CUDA device (torch built for CUDA {built})" if built
                      else "no CUDA device (CPU-only torch)")]
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    bf16 = "bf16 yes" if torch.cuda.is_bf16_supported() else "bf16 no"
    return [Check("cuda", "ok", f"{len(names)} device(s): {', '.join(names)}; CUDA {torch.version.cuda}, {bf16}")]


def ffmpeg_check() -> Check:
    path = shutil.which("ffmpeg")
    if path is None:
        return Check("ffmpeg", "warn", "not found: only files libsndfile decodes (WAV, FLAC, OGG, MP3) can be read")
    try:
        first = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("ffmpeg", "warn", f"{path} does not run: {error}")
    return Check("ffmpeg", "ok", f"{first[0] if first else 'unknown version'} ({path})")


def cache_check(path: Path | None) -> Check:
    if path is None:
        return Check("inference cache", "ok", "off (SAMPLECNN_INFERENCE_CACHE=off): choices measured every run")
    problem = _not_writable(path.parent)
    if problem:
        return Check("inference cache", "error", f"{path.parent} is not writable: {problem}")
    return Check("inference cache", "ok", f"{path} (writable)")


def _not_writable(folder: Path) -> str | None:
    """None when a file can be created in `folder` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def workspace_check(root: Path | None) -> Check:
    from samplecnn_cli.core.errors import SampleCNNError
    from samplecnn_cli.runs.workspace import CONFIG_NAME, Workspace

    try:
        workspace = Workspace.find(root=root)
    except SampleCNNError as error:
        return Check("workspace", "error", error.message)
    datasets = workspace.datasets
    if (workspace.root / CONFIG_NAME).is_file():
        where = f"{workspace.root} ({CONFIG_NAME}: {', '.join(sorted(datasets)) or 'no datasets'})"
    else:
        where = f"{workspace.root} (no {CONFIG_NAME}: `samplecnn preprocess` uses the toy set)"
    missing = [name for name, options in sorted(datasets.items())
               if "root" in options and not Path(options["root"]).is_dir()]
    if missing:
        return Check("workspace", "warn", f"{where}; dataset roots not found: {', '.join(missing)}")
    problem = _not_writable(workspace.root)
    if problem:
        return Check("workspace", "warn", f"{where}; not writable: {problem}")
    return Check("workspace", "ok", where)


def as_json(checks: list[Check]) -> dict:
    return {"ok": not any(c.status == "error" for c in checks), "checks": [asdict(c) for c in checks]}
