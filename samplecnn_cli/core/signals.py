"""SIGTERM handled like Ctrl-C: what a scheduler, `timeout`, systemd or Docker send ends a command the
way an interrupt does (workers stopped, temporary files removed, a run marked "interrupted", exit 143).

`install()` is called once, by the CLI's entry point (it changes process-wide state; library code never
does). Library code then sees a SIGTERM as `Terminated`, a KeyboardInterrupt, so every clean-up path
written for Ctrl-C (`except KeyboardInterrupt`, `except BaseException: ...; raise`, `finally`) covers it.

Worker processes (decoding pools) call `quiet_worker()` first: Ctrl-C, which a terminal sends to the
whole process group, is left to the parent; SIGTERM, which the parent uses to stop them, ends them
silently; and they die with their parent. `blocked()` keeps both signals pending while workers start, so
a signal never reaches a worker before it has set this up. `deferred()` takes an interrupt only after a
write that an exception must not cut (torch.save: an exception raised inside torch's writer leaves its zip
archive inconsistent and surfaces as a RuntimeError traceback instead of the interrupt).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """A SIGTERM arrived: stop like Ctrl-C, exit 143."""


def exit_code(interrupt: BaseException) -> int:
    """The shell's code for a command ended by this interrupt: 128 + the signal number."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def describe(interrupt: BaseException) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def install() -> None:
    """SIGTERM raises Terminated in the main thread (the CLI's entry point calls this once)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def quiet_worker() -> None:
    """The first thing a worker process does (a pool initializer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # POSIX
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when its parent dies, however it dies (no orphans)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's clean-up still stops its workers
        pass


@contextmanager
def blocked():
    """SIGINT and SIGTERM held back (delivered when the block ends) while worker processes start: they
    inherit the mask and unblock it in `quiet_worker`, after their handlers are set."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def deferred():
    """Ctrl-C and SIGTERM recorded during the block and taken when it ends, by the handlers that were
    there before (a signal mask would not do: any thread of the process may receive the signal)."""
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in INTERRUPTS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


# Libraries whose import sets up C extensions that an exception raised half way leaves broken: a SIGTERM
# landing in numpy's import made a later numpy call fail (an ImportError, or a half-made module: exit 1
# with a traceback), one in torch's aborted the process (measured: 5 of 150 and 2 of 60 signals sent
# during the import).
FRAGILE_IMPORTS = ("numpy", "torch")


def import_deferred(names: tuple[str, ...] = FRAGILE_IMPORTS) -> None:
    """Import `names` with Ctrl-C and SIGTERM deferred: a signal that arrives meanwhile is taken once
    they are whole (the CLI calls this when a command starts, after the allocator is set up)."""
    import importlib

    with deferred():
        for name in names:
            importlib.import_module(name)
