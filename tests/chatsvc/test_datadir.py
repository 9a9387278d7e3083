"""The data directory's lock and generated token secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chatsvc.datadir import DataDirError, DataDirLock, load_or_create_token_secret


def test_a_second_lock_on_the_same_directory_is_refused_with_the_holders_pid(
    tmp_path: Path,
) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    with pytest.raises(DataDirError, match=f"in use by pid {os.getpid()}"):
        DataDirLock(tmp_path).acquire()
    first.release()
    again = DataDirLock(tmp_path)
    again.acquire()
    again.release()


def test_generated_secret_is_private_long_and_stable(tmp_path: Path) -> None:
    secret = load_or_create_token_secret(tmp_path / "data")
    path = tmp_path / "data" / "token_secret"
    assert len(secret) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token_secret(tmp_path / "data") == secret
    assert load_or_create_token_secret(tmp_path / "other") != secret


def test_an_emptied_secret_file_is_an_error_not_a_silent_new_secret(tmp_path: Path) -> None:
    load_or_create_token_secret(tmp_path)
    (tmp_path / "token_secret").write_text("")
    with pytest.raises(DataDirError, match="is empty"):
        load_or_create_token_secret(tmp_path)
