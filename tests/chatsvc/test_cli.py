"""The command line in-process: help, token issuing, exit statuses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatsvc import cli, tokens
from chatsvc.datadir import load_or_create_token_secret


@pytest.mark.parametrize(
    "argv", [["--help"], ["serve", "--help"], ["token", "--help"], ["check-config", "--help"]]
)
def test_help_is_available_for_every_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    assert "usage: chatsvc" in capsys.readouterr().out


def test_token_is_signed_with_the_data_directory_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATSVC_DATA_DIR", str(tmp_path))
    status = cli.main(["token", "--role", "supervisor", "--user", "sup-1", "--ttl", "120"])
    assert status == 0
    token = capsys.readouterr().out.strip()
    claims = tokens.verify(load_or_create_token_secret(tmp_path), token, time.time())
    assert (claims.role, claims.user_id) == (tokens.Role.SUPERVISOR, "sup-1")
    assert 100 < claims.expires_at - time.time() <= 120


def test_token_uses_the_configured_secret_when_there_is_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "configured-" + "z" * 32
    monkeypatch.setenv("CHATSVC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHATSVC_AUTH_TOKEN_SECRET", secret)
    assert cli.main(["token", "--role", "patient", "--user", "p-9"]) == 0
    claims = tokens.verify(secret, capsys.readouterr().out.strip(), time.time())
    assert claims.user_id == "p-9"
    assert not (tmp_path / "token_secret").exists()


@pytest.mark.parametrize("argv", [["--user", "bad id"], ["--user", "ok", "--ttl", "0"]])
def test_token_refuses_bad_input_with_status_2(
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATSVC_DATA_DIR", str(tmp_path))
    assert cli.main(["token", "--role", "doctor", *argv]) == 2
    assert capsys.readouterr().err.startswith("chatsvc: ")


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "chatsvc"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "serve" in result.stdout and "check-config" in result.stdout
