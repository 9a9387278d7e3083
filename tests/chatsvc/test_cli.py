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


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without config.toml and a data directory of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHATSVC_CONFIG", raising=False)
    monkeypatch.setenv("CHATSVC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def issued_claims(isolated: Path, capsys: pytest.CaptureFixture[str]) -> tokens.Claims:
    secret = load_or_create_token_secret(isolated / "data")
    return tokens.verify(secret, capsys.readouterr().out.strip(), time.time())


def test_token_carries_departments_and_capacity(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["token", "--role", "doctor", "--user", "d1", "--name", "Dr One"]
    status = cli.main([*argv, "--departments", "general,psych", "--capacity", "3"])

    assert status == 0
    claims = issued_claims(isolated, capsys)
    assert (claims.name, claims.departments, claims.capacity) == ("Dr One", ("general", "psych"), 3)


def test_token_without_departments_or_capacity_carries_none(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "--role", "supervisor", "--user", "s1"]) == 0

    claims = issued_claims(isolated, capsys)
    assert (claims.departments, claims.capacity) == ((), 0)


def test_token_departments_are_checked_against_the_configured_ones(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = isolated / "desk.toml"
    config.write_text("[[departments]]\nid = 'derm'\nname = 'Dermatology'\n", encoding="utf-8")
    argv = ["token", "--config", str(config), "--role", "supervisor", "--user", "s1"]

    assert cli.main([*argv, "--departments", "derm"]) == 0
    assert issued_claims(isolated, capsys).departments == ("derm",)
    assert cli.main([*argv, "--departments", "general"]) == 2  # a default, not this desk's
    assert capsys.readouterr().err == "chatsvc: unknown departments: general\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--role", "doctor", "--departments", "general,cardio,astro"],
            "unknown departments: astro, cardio",
            id="unknown-departments",
        ),
        pytest.param(
            ["--role", "doctor", "--departments", "General"],
            "unknown departments: General",
            id="department-case",
        ),
        pytest.param(
            ["--role", "patient", "--departments", "general"],
            "patient tokens carry no departments",
            id="patient-with-departments",
        ),
        pytest.param(
            ["--role", "patient", "--capacity", "2"],
            "patient tokens carry no departments",
            id="patient-with-capacity",
        ),
        pytest.param(
            ["--role", "doctor", "--capacity", str(tokens.MAX_CAPACITY + 1)],
            "capacity must be",
            id="capacity-too-high",
        ),
        pytest.param(["--role", "doctor", "--capacity", "-1"], "capacity must be", id="negative"),
    ],
)
def test_token_refuses_bad_departments_or_capacity_with_status_2(
    argv: list[str], message: str, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "--user", "u1", *argv]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""  # no token printed
    assert captured.err.startswith("chatsvc: ")
    assert message in captured.err


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "chatsvc"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "serve" in result.stdout and "check-config" in result.stdout
