"""The data directory: its exclusive lock and the generated token secret.

chatsvc keeps two things of its own there (the embedded Redis keeps its files beside them):
`chatsvc.lock`, held for the life of `chatsvc serve` so that two services never share one
directory, and `token_secret`, generated on first start when the config gives none.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path
from typing import IO

LOCK_NAME = "chatsvc.lock"
SECRET_NAME = "token_secret"
# 256 bits: as strong as HS256 can use.
GENERATED_SECRET_BYTES = 32


class DataDirError(Exception):
    """The data directory cannot be used (in use by another process, or unwritable)."""


def prepare(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise DataDirError(
            f"cannot create the data directory {data_dir}: {error.strerror}"
        ) from None


class DataDirLock:
    """An advisory exclusive lock; the kernel releases it if the process dies."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        prepare(self.path.parent)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DataDirError(
                f"the data directory {self.path.parent} is in use by pid {holder}; "
                "give each chatsvc its own data_dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def load_or_create_token_secret(data_dir: Path) -> str:
    """The secret kept in the data directory, created (mode 0600) if it is not there yet."""
    prepare(data_dir)
    path = data_dir / SECRET_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if not secret:
            raise DataDirError(
                f"{path} is empty: delete it to have a new secret generated"
            ) from None
        return secret
    secret = secrets.token_hex(GENERATED_SECRET_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return secret
