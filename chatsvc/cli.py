"""The `chatsvc` command: serve, token, check-config, simulate.

Exit status: 0 success, 1 the service could not run (Redis binary missing, port taken, data
directory in use), 2 the configuration or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from chatsvc import tokens
from chatsvc.config import ENV_OVERRIDES, ConfigError, LoadedConfig, load_config
from chatsvc.datadir import DataDirError
from chatsvc.embedded_redis import EmbeddedRedisError
from chatsvc.observability import configure_logging
from chatsvc.simulate import command as simulate_command

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

_CONFIG_HELP = (
    "config file (default: $CHATSVC_CONFIG, else ./config.toml if present, else built-in defaults)"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatsvc",
        description="Real-time chat service for doctor-patient online consultation.",
        epilog="Environment overrides: " + ", ".join(o.variable for o in ENV_OVERRIDES),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the gateway (with an embedded Redis when no [redis] url is set)",
        description="Run the gateway. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    serve.add_argument("--config", metavar="PATH", help=_CONFIG_HELP)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="print sign-in links for demo doctors and a supervisor beside the /demo page",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N gateway processes on the one port, sharing only Redis (default 1)",
    )

    token = commands.add_parser(
        "token",
        help="issue a signed access token",
        description="Print a signed token for a role and user id, signed with the desk's secret.",
    )
    token.add_argument("--config", metavar="PATH", help=_CONFIG_HELP)
    token.add_argument("--role", required=True, choices=[role.value for role in tokens.Role])
    token.add_argument("--user", required=True, help="user id (letters, digits, _ . @ -)")
    token.add_argument("--name", default="", help="display name shown to the other party")
    token.add_argument(
        "--departments",
        default="",
        metavar="IDS",
        help="doctors and supervisors: comma-separated department ids they serve or oversee",
    )
    token.add_argument(
        "--capacity",
        type=int,
        default=0,
        metavar="N",
        help="doctors: consultations at once (default: limits.doctor_capacity)",
    )
    token.add_argument(
        "--ttl",
        type=int,
        default=None,
        metavar="SECONDS",
        help="lifetime (default: auth.token_ttl_s)",
    )

    check = commands.add_parser(
        "check-config",
        help="validate the configuration and print what would be used",
        description="Validate the config file and environment overrides, then exit.",
    )
    check.add_argument("--config", metavar="PATH", help=_CONFIG_HELP)

    simulate_command.add_parser(commands, _CONFIG_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        loaded = load_config(args.config)
    except ConfigError as error:
        print(f"chatsvc: configuration error: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.command == "check-config":
        return _check_config(loaded)
    if args.command == "token":
        return _token(loaded, args)
    if args.command == "simulate":
        return simulate_command.run(loaded, args)
    if args.command == "serve" and args.workers < 1:
        print("chatsvc: --workers must be at least 1", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return _serve(loaded, demo=args.demo, workers=args.workers)


def _check_config(loaded: LoadedConfig) -> int:
    config = loaded.config
    redis = config.redis.url or "embedded redis-server in the data directory"
    print(f"configuration OK: {loaded.source}")
    print(f"  listen     {config.server.host}:{config.server.port}")
    print(f"  data_dir   {loaded.data_dir}")
    print(f"  redis      {redis}")
    print(f"  secret     {'configured' if config.auth.token_secret else 'generated in data_dir'}")
    for department in config.departments:
        print(f"  department {department.id} ({department.routing}): {department.name}")
    return 0


def _token(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from chatsvc.server import token_secret_for

    ttl = args.ttl if args.ttl is not None else loaded.config.auth.token_ttl_s
    if ttl <= 0:
        print("chatsvc: --ttl must be positive", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        secret = token_secret_for(loaded)
    except DataDirError as error:
        print(f"chatsvc: {error}", file=sys.stderr)
        return EXIT_FAILED
    departments = tuple(part for part in args.departments.split(",") if part)
    known = {department.id for department in loaded.config.departments}
    unknown = sorted(set(departments) - known)
    if unknown:
        print(f"chatsvc: unknown departments: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        token = tokens.issue(
            secret,
            tokens.Role(args.role),
            args.user,
            time.time(),
            ttl,
            args.name,
            departments=departments,
            capacity=args.capacity,
        )
    except tokens.TokenError as error:
        print(f"chatsvc: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(token)
    return 0


def _serve(loaded: LoadedConfig, demo: bool, workers: int) -> int:
    from chatsvc import server

    configure_logging(loaded.config.log.level, loaded.config.log.format)
    try:
        return server.run(loaded, demo=demo, workers=workers)
    except (DataDirError, EmbeddedRedisError, server.ServeError) as error:
        return server.fail(str(error))
    except KeyboardInterrupt:  # Ctrl-C while the embedded Redis was still starting
        return 0


if __name__ == "__main__":
    sys.exit(main())
