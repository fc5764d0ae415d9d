"""Atomic file writes shared by checkpoints (``dropnet.io``) and the lottery-ticket records.

The content goes to a temporary file beside the destination, is flushed to disk and moved into
place with ``os.replace``, so a reader sees the old file or the new one, never a partial one.

- The temporary file is created with ``os.open(..., 0o666)``: the process umask applies, so the
  final file gets the same mode as any other file the user creates (0644 under umask 022), not
  ``tempfile.mkstemp``'s 0600.
- Its name says what it is and who writes it: ``.<name>.dropnet-tmp-<pid>-<random>``. A save that
  was killed (SIGKILL, power loss) cannot remove its temporary file; the next save to the same
  path removes those of writers that no longer run (the pid is not alive), and leaves alone those
  of a concurrent writer. ``rm .<name>.dropnet-tmp-*`` is always safe when no save is running.
"""
from __future__ import annotations

import os
import secrets
from typing import BinaryIO, Callable

_TAG = ".dropnet-tmp-"


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}{_TAG}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # exists under another user / not a pid
        return True
    return True


def remove_stale_temps(path: str) -> None:
    """Delete the temporary files of earlier saves to ``path`` whose writer is gone."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:  # removed meanwhile by someone else, or not ours to remove
            pass


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a binary file that becomes ``path`` only once ``write`` returned."""
    path = os.fspath(path)
    remove_stale_temps(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f"{_temp_prefix(path)}{os.getpid()}-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
