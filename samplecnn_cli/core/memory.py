"""Keep large tensor buffers in the process instead of handing them back to the kernel after every op.

Why: glibc serves every allocation above its mmap threshold (at most 32 MB by default) with a fresh
mmap and unmaps it on free. A SampleCNN activation at batch 23 is ~230 MB, so each layer of each batch
page-faults and zero-fills its output anew: on a 2-core VM that doubled the time of a plain fp32
forward pass (`samplecnn bench infer --compare`; figures in docs/performance.md). Serving large blocks
from the heap and not trimming it lets the next batch reuse the same pages; one arena for all threads
keeps that heap from being kept once per thread (the RSS of a 1,000-file tag run stays flat).
Transparent huge pages for PyTorch's CPU allocator (THP_MEM_ALLOC_ENABLE) cut TLB misses on those
buffers where the kernel allows.

Cost: the process keeps its peak heap until it exits (peak RSS is unchanged; RSS no longer falls
between batches). `SAMPLECNN_ALLOCATOR=system` turns all of it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

OPT_OUT_ENV = "SAMPLECNN_ALLOCATOR"  # "system": leave the allocator as it is
HEAP_LIMIT = 1 << 30  # blocks below 1 GiB come from the heap; the heap is trimmed above 1 GiB free
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt parameter numbers (malloc.h)
_GLIBC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(HEAP_LIMIT), "MALLOC_TRIM_THRESHOLD_": str(HEAP_LIMIT),
              "MALLOC_ARENA_MAX": "1"}
_state = {"applied": None}


def tune_allocator(enabled: bool = True) -> dict:
    """Apply the settings once per process (idempotent); returns what was applied.

    Also exports them to the environment, so worker processes started later (decoding, data loading)
    begin with the same settings. PyTorch reads THP_MEM_ALLOC_ENABLE once, at its first allocation:
    it takes effect only when this runs before torch is imported (as the CLI does)."""
    if _state["applied"] is not None:
        return _state["applied"]
    applied = {"heap_reuse": False, "huge_pages": False}
    if enabled and os.environ.get(OPT_OUT_ENV, "").strip().lower() != "system":
        applied["heap_reuse"] = _glibc_heap_reuse()
        if sys.platform.startswith("linux"):
            os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
            applied["huge_pages"] = os.environ["THP_MEM_ALLOC_ENABLE"] == "1" and "torch" not in sys.modules
    _state["applied"] = applied
    return applied


def allocator_state() -> dict:
    """What tune_allocator applied in this process (nothing yet: both False)."""
    return dict(_state["applied"] or {"heap_reuse": False, "huge_pages": False})


def plain_environment(env: dict | None = None) -> dict:
    """A copy of `env` (default: os.environ) without these settings: how a plain script would run."""
    clean = dict(os.environ if env is None else env)
    for name in (*_GLIBC_ENV, "THP_MEM_ALLOC_ENABLE"):
        clean.pop(name, None)
    clean[OPT_OUT_ENV] = "system"
    return clean


def _glibc_heap_reuse() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # One arena: with untrimmed heaps, every thread that allocates (decode-result and reader threads)
    # would otherwise grow an arena of its own, and RSS crept up with the number of files tagged.
    ok = (mallopt(_M_MMAP_THRESHOLD, HEAP_LIMIT) == 1 and mallopt(_M_TRIM_THRESHOLD, HEAP_LIMIT) == 1
          and mallopt(_M_ARENA_MAX, 1) == 1)
    if ok:
        for name, value in _GLIBC_ENV.items():
            os.environ.setdefault(name, value)
    return ok
