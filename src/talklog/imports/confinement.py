"""The import folder: the one place the import DAG reads export files from.

A worker can read files no DAG user should see (`.env`, `/etc/passwd`, `/proc/self/environ`):
the DAG's `path` names a file inside a configured folder, and `confine` refuses anything else,
saying which rule was broken and never what the file holds:

- no path, or a path with a `..` component (no climbing out, not even back in);
- an absolute path outside the folder (an absolute path inside it is accepted);
- a hidden name (a component starting with `.`: `.env`, `.git/...`), also where a symbolic
  link leads;
- a path that does not exist, or that leads out of the folder through a symbolic link (the
  path is resolved strictly);
- anything but a regular file (directories, devices, FIFOs, sockets).

`open_confined` opens the checked file without following a symbolic link put there since, and
refuses it when it is no longer a regular file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath
from typing import BinaryIO

from talklog.imports.export_format import ImportFileError


class ImportPathRefused(ImportFileError):
    """The path breaks a rule of the import folder (the message names the rule)."""


def confine(folder: str | Path, requested: str | Path) -> Path:
    """The real path of `requested` (relative to `folder`, or absolute inside it)."""
    root = _root(folder)
    asked = Path(str(requested).strip())
    if not str(requested).strip():
        raise ImportPathRefused("no path given: name an export file in the import folder")
    if ".." in asked.parts:
        raise ImportPathRefused("the path climbs out of the import folder ('..' is not allowed)")
    candidate = asked if asked.is_absolute() else root / asked
    parts = _inside(candidate, root, Path(folder).expanduser().absolute())
    if parts is None:
        raise ImportPathRefused(f"the path is outside the import folder {folder}")
    _refuse_hidden(parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a dangling link, a link loop, no permission
        raise ImportPathRefused("no such file in the import folder") from None
    inside = _inside(real, root)
    if inside is None:
        raise ImportPathRefused("the path leads out of the import folder (a symbolic link)")
    _refuse_hidden(inside)
    _require_regular(real.stat().st_mode)
    return real


def open_confined(path: Path) -> BinaryIO:
    """`path` (from `confine`) opened for reading, refusing a link or special file put there."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise ImportPathRefused("the file changed while it was checked: try again") from None
    try:
        _require_regular(os.fstat(descriptor).st_mode)
    except ImportPathRefused:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def _root(folder: str | Path) -> Path:
    try:
        root = Path(folder).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise ImportPathRefused(f"the import folder {folder} does not exist") from None
    if not root.is_dir():
        raise ImportPathRefused(f"the import folder {folder} is not a directory")
    return root


def _inside(path: Path, *roots: Path) -> tuple[str, ...] | None:
    """The components of `path` below the first root it is in, or None."""
    for root in roots:
        if path.is_relative_to(root):
            return PurePath(path).relative_to(root).parts
    return None


def _refuse_hidden(parts: tuple[str, ...]) -> None:
    if any(part.startswith(".") for part in parts):
        raise ImportPathRefused(
            "hidden files and folders (names starting with '.') are not imported"
        )


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ImportPathRefused("not a regular file (a directory, device, FIFO or socket)")
