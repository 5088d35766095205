"""memory.tune_allocator: large buffers come from the (reused) heap, not a fresh mmap per allocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from samplecnn_cli.core.memory import plain_environment

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator settings")

# Allocates 300 MB with numpy and reports how many bytes glibc holds in mmapped blocks meanwhile.
PROBE = """
import ctypes, json, sys
from samplecnn_cli.core.memory import tune_allocator
applied = tune_allocator() if sys.argv[1] == "tune" else None
import numpy as np
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                  "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
block = np.ones(300 * 2**20, dtype=np.uint8)
print(json.dumps({"applied": applied, "mmapped": libc.mallinfo2().hblkhd, "heap": libc.mallinfo2().arena}))
"""


def _probe(mode: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_tuned_process_serves_large_blocks_from_the_heap():
    tuned = _probe("tune", plain_environment() | {"SAMPLECNN_ALLOCATOR": ""})
    plain = _probe("plain", plain_environment())
    assert tuned["applied"]["heap_reuse"] is True
    assert tuned["mmapped"] < 100 * 2**20 <= tuned["heap"]
    assert plain["mmapped"] >= 300 * 2**20  # the system default: one mmap per large block


def test_opt_out_leaves_the_allocator_alone():
    result = _probe("tune", plain_environment())  # plain_environment sets SAMPLECNN_ALLOCATOR=system
    assert result["applied"] == {"heap_reuse": False, "huge_pages": False}
    assert result["mmapped"] >= 300 * 2**20


def test_settings_are_exported_to_child_processes_and_stripped_for_plain_ones():
    code = ("import json, os; from samplecnn_cli.core.memory import tune_allocator; tune_allocator(); "
            "print(json.dumps({k: os.environ.get(k) for k in ('MALLOC_MMAP_THRESHOLD_', 'THP_MEM_ALLOC_ENABLE')}))")
    env = plain_environment() | {"SAMPLECNN_ALLOCATOR": ""}
    exported = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                         check=True).stdout)
    assert exported == {"MALLOC_MMAP_THRESHOLD_": str(2**30), "THP_MEM_ALLOC_ENABLE": "1"}
    stripped = plain_environment(exported | {"PATH": os.environ.get("PATH", "")})
    assert "MALLOC_MMAP_THRESHOLD_" not in stripped and "THP_MEM_ALLOC_ENABLE" not in stripped
