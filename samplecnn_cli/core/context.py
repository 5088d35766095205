"""The process context: everything a command takes from its environment, read once by the CLI's `main`
and passed down. Library code never reads these variables and never changes process-wide state.

    debug            full tracebacks (--debug or SAMPLECNN_DEBUG)
    workspace        the workspace folder named by SAMPLECNN_WORKSPACE (or a recipe's work folder)
    inference_cache  the JSON file of measured inference choices (SAMPLECNN_INFERENCE_CACHE; "off": None)
    allocator        "tuned" (memory.py) or "system" (SAMPLECNN_ALLOCATOR=system)
    dist             torchrun's WORLD_SIZE / RANK / LOCAL_RANK / LOCAL_WORLD_SIZE

`apply()` makes the two process-wide settings a command needs, and only `main` calls it: the allocator
policy (before torch loads) and the CPU threads of this process (the cores shared among torchrun's local
processes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

WORKSPACE_ENV = "SAMPLECNN_WORKSPACE"
CACHE_ENV = "SAMPLECNN_INFERENCE_CACHE"
DEBUG_ENV = "SAMPLECNN_DEBUG"
ALLOCATOR_ENV = "SAMPLECNN_ALLOCATOR"


@dataclass(frozen=True)
class DistInfo:
    """This process's place under torchrun (one process, rank 0, without it)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Context:
    debug: bool = False
    workspace: Path | None = None
    inference_cache: Path | None = None
    allocator: str = "tuned"
    dist: DistInfo = field(default_factory=DistInfo)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, debug: bool = False) -> Context:
        env = os.environ if env is None else env
        world = int(env.get("WORLD_SIZE", "1"))
        dist = DistInfo(world_size=world, rank=int(env.get("RANK", "0")), local_rank=int(env.get("LOCAL_RANK", "0")),
                        local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))))
        workspace = env.get(WORKSPACE_ENV)
        return cls(debug=debug or bool(env.get(DEBUG_ENV)),
                   workspace=Path(workspace).expanduser() if workspace else None,
                   inference_cache=inference_cache_path(env),
                   allocator="system" if env.get(ALLOCATOR_ENV, "").strip().lower() == "system" else "tuned",
                   dist=dist)

    def with_workspace(self, workspace: Path) -> Context:
        return replace(self, workspace=Path(workspace))

    def apply(self) -> dict:
        """The process-wide settings (called by `main` only, before a command imports torch)."""
        from samplecnn_cli.core.memory import tune_allocator

        return tune_allocator(enabled=self.allocator == "tuned")

    def configure_threads(self) -> int:
        """Share this machine's cores among torchrun's local processes (one process: all of them).
        Called by `main` for the commands that train."""
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // max(1, self.dist.local_world_size))
        torch.set_num_threads(threads)
        return threads


def inference_cache_path(env: Mapping[str, str]) -> Path | None:
    """SAMPLECNN_INFERENCE_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/samplecnn/inference.json; "off": None."""
    value = env.get(CACHE_ENV)
    if value == "off":
        return None
    if value:
        return Path(value)
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "samplecnn" / "inference.json"
