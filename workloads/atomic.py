"""The one atomic file writer of the project (the child, the store and every export use it).

A write goes to a fresh temporary file beside the target, is flushed and fsynced, then renamed
over the target: a reader sees the old file or the new one, never half of one, and a failure
(disk full, a kill) leaves the old file and no temporary behind (a SIGKILL can leave a
``.NAME.*.tmp`` — never under the target's name). Two rules a plain ``os.replace`` does not
keep:

- modes follow the umask like any other file the user creates (``mkstemp`` would make every
  report, record.json and spec.json owner-only), and an existing file keeps its own mode;
- only a regular file is ever replaced: a symlink, a FIFO, a device node (``/dev/full``), a
  socket or a folder at the path is refused with one line (``UnsafeTargetError``).

Stdlib only: ``workloads/`` may not import ``sessions/``, so the writer lives here, below both.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from workloads.errors import UnsafeTargetError

_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def check_target(path: Path) -> os.stat_result | None:
    """The target's lstat when it is a regular file, None when absent; raises
    UnsafeTargetError for anything else (a symlink, even to a regular file)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(info.st_mode):
        return info
    kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
    raise UnsafeTargetError(f"refusing to write {path}: it is {kind}, not a regular file",
                            "choose another path (it was left as it was)")


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    path = Path(path)
    existing = check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_NOFOLLOW", 0)
    while True:
        temp = path.parent / f".{path.name[:180]}.{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 minus the umask, as for any file the user makes (mkstemp: 0o600)
            fd = os.open(temp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as stream:
            if existing is not None:  # a file the user chmod-ed keeps its mode
                os.fchmod(stream.fileno(), stat.S_IMODE(existing.st_mode))
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        check_target(path)  # made while we wrote? still never replace it
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
