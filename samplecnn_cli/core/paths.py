"""Path containment: the one place that decides whether a path stays inside a root folder.

Paths are compared after `Path.resolve()` (which follows every symlink and removes `..`), never as
text: `root/../../victim` and `root/link/victim` with `link -> /elsewhere` both resolve outside
`root` and are refused. Datasets (audio listed by a labels file), recipes (the folders a step
cleans) and anything else that deletes go through these functions.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path


def source_tree() -> Path:
    """The folder above the samplecnn_cli package: the checkout's top in a source tree."""
    return Path(str(resources.files("samplecnn_cli"))).resolve().parent


def bundled_dir(name: str) -> Path:
    """registry/ or recipes/: inside the wheel (samplecnn_cli/_data) or at the source tree's top."""
    packaged = Path(str(resources.files("samplecnn_cli"))) / "_data" / name
    return packaged if packaged.is_dir() else source_tree() / name


def real(path: str | Path) -> Path:
    """`path` made absolute with every symlink and `..` resolved (the path need not exist; a symlink
    loop stays as it is instead of raising, and then fails where it is used)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def is_inside(path: str | Path, root: str | Path, *, allow_root: bool = True) -> bool:
    """True when `path`, resolved, is `root` (if allow_root) or below it, resolved."""
    target, base = real(path), real(root)
    if target == base:
        return allow_root
    return base in target.parents


def removal_target(path: str | Path, root: str | Path) -> Path | None:
    """What `remove_inside` would delete for `path`: its real location, or None when that is not
    strictly inside `root`. The folder holding `path` is resolved (a symlinked folder on the way out
    of `root` is refused); `path` itself is kept as named, so a symlink is removed as a link."""
    path = Path(path).expanduser().absolute()
    if path.name in ("", ".", ".."):
        return None
    target = real(path.parent) / path.name
    base = real(root)
    return target if base in target.parents else None


def remove_inside(path: str | Path, root: str | Path) -> bool:
    """Delete the file, symlink or folder `path` if it lies strictly inside `root`; False if refused.

    A symlink is unlinked (its target is never touched); `root` itself is never removed; nothing
    there is not an error (True: nothing left to remove).
    """
    target = removal_target(path, root)
    if target is None:
        return False
    if target.is_symlink() or target.is_file():
        target.unlink(missing_ok=True)
    elif target.is_dir():
        shutil.rmtree(target)  # rmtree removes symlinks found inside as links, never their targets
    return True
