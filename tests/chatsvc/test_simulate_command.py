"""`chatsvc simulate` on the command line: exit statuses before any patient arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatsvc import cli


def test_simulate_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["simulate", "--help"])
    assert exited.value.code == 0
    assert "--profile" in capsys.readouterr().out


def test_a_bad_flag_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--secret", "s" * 32, "--departments", "general=zero"]
    assert cli.main(argv) == 2
    assert "--departments" in capsys.readouterr().err


def test_an_unreachable_service_exits_1(free_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--secret", "s" * 32, "--url", f"http://127.0.0.1:{free_port}", "--quiet"]
    assert cli.main(argv) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_a_remote_service_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--secret", "s" * 32, "--url", "http://192.0.2.10:8080", "--quiet"]
    assert cli.main(argv) == 1
    assert "--allow-remote" in capsys.readouterr().err


def test_no_secret_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "data"\n')
    assert cli.main(["simulate", "--config", str(config), "--quiet"]) == 2
    assert "--secret" in capsys.readouterr().err
