"""Writing output files safely: atomically, into a checked folder, never over a result unasked.

A file written through :func:`atomic_path` is either the complete new file or the old one
(or absent): it is written under a temporary name in the same folder, flushed to disk, and
renamed over the target in one step, so a kill at any instant never leaves half a file.
A long run that writes a set of files as it goes (an MD trajectory and log) uses
:func:`partial_paths` instead: the same final renames, but what an interrupted run wrote is
kept under visible ``NAME.partial.SUFFIX`` names, and the previous run's whole set is removed
before the first rename, so the files left are never one run's beside another's.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Temporary files of atomic_path: ".NAME-XXXXXXXX.tmp.SUFFIX" (the suffix keeps tools that
# pick a format from the name, matplotlib and ASE, writing the right format).
TEMPORARY_MARK = ".tmp"
# Files of partial_paths, during a run and after an interrupted one: "NAME.partial.SUFFIX"
PARTIAL_MARK = ".partial"


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a leftover temporary file of :func:`atomic_path`."""
    return path.name.startswith(".") and f"{TEMPORARY_MARK}{path.suffix}" in path.name


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; on leaving, it replaces ``path``.

    ``path``'s folder is created if needed. If the body raises, the temporary file is removed
    and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # created by the writer, so it gets the usual permissions (not mkstemp's owner-only ones)
    temporary = path.with_name(f".{path.stem}-{secrets.token_hex(4)}{TEMPORARY_MARK}{path.suffix}")
    try:
        yield temporary
        _commit(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def partial_of(path: str | Path) -> Path:
    """Where :func:`partial_paths` writes ``path``: ``NAME.partial.SUFFIX`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}{PARTIAL_MARK}{path.suffix}")


@contextmanager
def partial_paths(
    paths: Sequence[str | Path], retired: Iterable[str | Path] = ()
) -> Iterator[list[Path]]:
    """The paths :func:`partial_of` ``paths``, for a long run to write as it goes; on leaving,
    they replace ``paths`` as one set.

    ``paths``' folders are created if needed. On leaving, the partial files are flushed to
    disk, then every file of ``paths`` and ``retired`` (the rest of a previous run's set, that
    the caller writes afterwards) is removed, and only then is each partial file renamed into
    place: a kill at any instant leaves the previous set, part of it, or part of the new one,
    never files of both. If the body raises (an error, Ctrl-C) or the process is killed
    before, what was written so far stays under the partial names, for inspection, and the
    previous set is untouched. A partial file left by an earlier run is the body's to
    overwrite.
    """
    paths = [Path(path) for path in paths]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    partials = [partial_of(path) for path in paths]
    yield partials
    for partial in partials:
        _flush(partial)
    removed = [path for path in [*paths, *map(Path, retired)] if path.exists()]
    for path in removed:
        path.unlink()
    for folder in {path.parent for path in removed}:
        _sync_folder(folder)
    for partial, path in zip(partials, paths, strict=True):
        replace_synced(partial, path)


def _flush(path: Path) -> None:
    """Flush the file ``path`` to disk."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _commit(written: Path, path: Path) -> None:
    """Flush ``written`` to disk and rename it over ``path`` (:func:`replace_synced`)."""
    _flush(written)
    replace_synced(written, path)


@contextmanager
def appending(path: str | Path) -> Iterator[Path]:
    """A temporary copy of ``path`` (empty if there is none) to append to; on leaving, it
    replaces ``path`` atomically, so a kill mid-append leaves the old file whole."""
    path = Path(path)
    with atomic_path(path) as temporary:
        if path.exists():
            shutil.copyfile(path, temporary)
        yield temporary


@contextmanager
def sole_writer(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock (``fcntl.flock``) on ``PATH.lock`` while writing ``path``, so
    that no two processes write it at once; the lock file is removed on leaving.

    The lock dies with its process: a killed writer leaves at most an unlocked file, which the
    next writer takes over. A writer that locked a file its holder has just removed opens the
    new one instead.

    Raises:
        ValueError: another process holds the lock (one line naming ``path``).
    """
    path = Path(path)
    lock = path.with_name(f"{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            opened = os.fstat(descriptor)
            current = os.stat(lock)
        except BlockingIOError:
            os.close(descriptor)
            raise ValueError(
                f"another process is writing {path} (it holds {lock}); wait for it to end or "
                "stop it, then run again"
            ) from None
        except FileNotFoundError:  # removed by its holder after we opened it
            os.close(descriptor)
            continue
        if (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino):
            break
        os.close(descriptor)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held: no one else can be using this file
        os.close(descriptor)


def temporaries_of(path: str | Path) -> list[Path]:
    """Leftover temporary files of :func:`atomic_path` for ``path`` (from a killed writer)."""
    path = Path(path)
    pattern = re.compile(
        rf"\.{re.escape(path.stem)}-[0-9a-f]{{8}}{re.escape(TEMPORARY_MARK + path.suffix)}"
    )
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def replace_synced(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target`` (one step) and make the rename durable."""
    os.replace(source, target)
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def writable_folder(folder: str | Path, what: str) -> Path:
    """Create ``folder`` if needed and check that files can be written into it.

    Args:
        folder: the output folder.
        what: what the folder is for, named in the error (e.g. ``"--output-dir"``).

    Raises:
        ValueError: it is a file, cannot be created, or is not writable.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder; choose another {what}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create {what} {folder} ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {folder} is not writable; choose another {what}")
    return folder


def check_outputs(paths: Iterable[str | Path], overwrite: bool) -> None:
    """Before any work, creating nothing: every output's folder exists and is writable or can
    be created, no two outputs are one file, and, unless ``overwrite``, no output exists yet
    (a previous result is never replaced unasked). :func:`atomic_path` creates the folders
    when writing starts.

    Raises:
        ValueError: naming the first output that cannot be written, is another's file too or
            already exists.
    """
    paths = [Path(path) for path in paths]
    seen: set[str] = set()
    for path in paths:
        name = os.path.normpath(path.absolute())
        if name in seen:
            raise ValueError(f"two outputs would be written to {path}; give them other names")
        seen.add(name)
    for path in paths:
        _check_creatable(path.parent)
        if path.is_dir():
            raise ValueError(f"output {path} is a folder; choose another file name")
        if path.exists() and not overwrite:
            raise ValueError(
                f"{path} exists already; pass --overwrite to replace it or choose another output"
            )


def _check_creatable(folder: Path) -> None:
    """``folder`` is a writable folder, or its nearest existing ancestor is one."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"output folder {folder} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {existing} is not writable; choose another output")
