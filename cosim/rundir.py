"""Run directories written whole or not at all.

A run writes into a hidden sibling (`.<name>.partial`) and renames it into place when everything is
written, so a reader never meets a half-written run and a reused directory is replaced only by a complete
one. A lock file beside it (`.<name>.lock`, held with flock, so a killed run never leaves it locked)
refuses a second run on the same directory. Clearing never follows a symlink (shutil.rmtree does not).
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError, field_error

# what marks a folder as a run directory (and so one a new run may replace)
RUN_MARKER = "manifest.json"


class RunDirError(UserError):
    """The run directory cannot be used or written: one line, nothing replaced."""


def is_run_dir(path: Path) -> bool:
    """A folder holding a run (its manifest), not a symlink to one."""
    return path.is_dir() and not path.is_symlink() and (path / RUN_MARKER).is_file()


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and next(path.iterdir(), None) is None


def check_replaceable(path: Path, where: str, flag: str = "--out") -> None:
    """A UserError unless `path` is absent, an empty folder, or a run directory (which a run may replace):
    a run never deletes a folder of other files."""
    if not os.path.lexists(path) or is_empty_dir(path) or is_run_dir(path):
        return
    what = "a symlink" if path.is_symlink() else "a file" if not path.is_dir() else "a folder of other files"
    raise RunDirError(field_error(where, flag, str(path), f"a new folder or a run directory ({path} is {what}, "
                                                          "which a run will not replace)"))


class Staging:
    """Where a run writes (`path`) until `commit()` renames it to `run_dir`, replacing an older run there."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        where = Path(os.path.abspath(run_dir))      # "." has no name; its absolute path has
        self.path = where.parent / f".{where.name}.partial"
        self.old = where.parent / f".{where.name}.old"
        self.lock = where.parent / f".{where.name}.lock"
        self.committed = False

    def commit(self) -> None:
        if os.path.lexists(self.run_dir):
            os.rename(self.run_dir, self.old)        # the older run, out of the way until the new one is in
        os.rename(self.path, self.run_dir)
        self.committed = True
        shutil.rmtree(self.old, ignore_errors=True)

    def _recover(self) -> None:
        """Undo what a killed run left: a swap cut between its two renames, a partial folder."""
        if os.path.lexists(self.old):
            if not os.path.lexists(self.run_dir):
                os.rename(self.old, self.run_dir)
            else:
                shutil.rmtree(self.old, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def staged(run_dir: Path, where: str = "cosim run") -> Iterator[Staging]:
    """Lock `run_dir`, hand out its Staging; on exit remove the staging folder unless committed, unlock."""
    run_dir = Path(run_dir)
    check_replaceable(run_dir, where)
    stage = Staging(run_dir)
    try:
        stage.lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(stage.lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirError(field_error(where, "--out", str(run_dir), f"a folder it can write ({exc.strerror})")) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunDirError(field_error(where, "--out", str(run_dir),
                                          f"a directory no other run is writing (process {holder} is)")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        stage._recover()
        try:
            stage.path.mkdir()
        except OSError as exc:
            raise RunDirError(field_error(where, "--out", str(run_dir), f"a folder it can write ({exc.strerror})")) from None
        try:
            yield stage
        finally:
            if not stage.committed:
                shutil.rmtree(stage.path, ignore_errors=True)
    finally:
        try:
            os.unlink(stage.lock)
        except OSError:
            pass
        os.close(fd)


def write_error(run_dir: Path, exc: OSError, where: str = "cosim run") -> RunDirError:
    """One line for a write that failed (disk full, permissions): nothing was replaced."""
    why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    kept = "the older run there is kept" if is_run_dir(run_dir) else "nothing was written there"
    return RunDirError(field_error(where, "--out", str(run_dir), f"a folder it can write ({why}; {kept})"))


@contextmanager
def signals_deferred() -> Iterator[list]:
    """Hold SIGINT and SIGTERM while a run directory is written and renamed: a second Ctrl-C (or a SIGTERM)
    then cannot leave it half written. Yields the list of signals caught meanwhile (the caller acts on them
    after). Only in the main thread (signal handlers live there); elsewhere nothing is held."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    held = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in held}
    for s in held:
        signal.signal(s, lambda signum, _frame: caught.append(signum))
    try:
        yield caught
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within: the first SIGINT or SIGTERM stops the run (KeyboardInterrupt: it ends `interrupted` and is
    written); later ones while it stops are noted, not raised, so a second Ctrl-C cannot cut the writing
    short (Ctrl-\\ still quits at once). Handlers are restored after; main thread only."""
    stopping: list[int] = []

    def handler(signum, _frame):
        if stopping:
            if len(stopping) == 1:
                print("stopping: writing what was recorded (Ctrl-\\ quits at once)", file=sys.stderr)
            stopping.append(signum)
            return
        stopping.append(signum)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.signal(s, handler) for s in held}
    try:
        yield
    finally:
        for s, old in before.items():
            # once stopping, a late Ctrl-C must not cut the exit short either: ignored from here on (Python
            # resets handlers of its own to the default while it shuts down, but leaves SIG_IGN alone)
            signal.signal(s, signal.SIG_IGN if stopping else old)
