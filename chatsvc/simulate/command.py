"""The `chatsvc simulate` command line: its flags, the secret and red-flag phrases taken from the
service's configuration, and the report on stdout (text or JSON) with an optional PNG chart.

Exit status: 0 the run finished (whatever it measured), 1 it could not start (the service is
unreachable, not ready or remote, refuses the secret, or the chart cannot be written), 2 a flag
or the profile file is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from chatsvc.config import LoadedConfig, department_red_flags
from chatsvc.datadir import SECRET_NAME
from chatsvc.simulate.scenario import (
    MAX_DURATION_S,
    Scenario,
    ScenarioError,
    load_profile,
    parse_mix,
    parse_range,
)

EXIT_FAILED = 1
EXIT_BAD_ARGS = 2


def add_parser(commands: Any, config_help: str) -> None:
    """Add `simulate` to the `chatsvc` subcommands (`commands` is argparse's subparsers)."""
    d = Scenario()
    p: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="rehearse a surge: simulated patients and doctors against a running service",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Drive real WebSocket clients against a running chatsvc: patients arrive (Poisson, "
            "or a profile), wait, give up or are served by simulated doctors; then print a "
            "report. Bounded in time and count; loopback addresses only unless --allow-remote."
        ),
    )
    p.add_argument("--config", metavar="PATH", help="the running service's " + config_help)
    p.add_argument("--url", default=d.url, help="the service")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    p.add_argument(
        "--allow-busy-desk",
        action="store_true",
        help="run even when patients wait or are being seen (simulated doctors take and end "
        "them): never on a desk that serves real patients",
    )
    p.add_argument("--secret", help="the service's token secret (default: from its config)")
    seconds = {
        "--duration": (d.duration_s, f"seconds of arrivals (at most {MAX_DURATION_S:g})"),
        "--response": (d.response_s, "a doctor's mean pause before taking the next patient"),
        "--think": (d.think_s, "mean pause before a message"),
        "--patience": (d.patience_s, "mean patience of a waiting patient (0: endless)"),
        "--drain": (d.drain_s, "how long open consultations may finish after the arrivals"),
    }
    for flag, (default, text) in seconds.items():
        p.add_argument(flag, type=float, default=default, metavar="S", help=text)
    p.add_argument("--max-patients", type=int, default=d.max_patients, metavar="N", help="at most")
    p.add_argument("--rate", type=float, default=d.rate_per_min, metavar="PER_MIN", help="Poisson")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="arrivals a minute over time instead of --rate: TOML `points = [[minute, rate], "
        "...]` or CSV lines `minute,rate`, linear in between",
    )
    p.add_argument("--departments", default="general", metavar="MIX", help="general=0.7,psych=0.3")
    p.add_argument(
        "--red-flags", type=float, default=d.red_flag_share, metavar="SHARE", help="of intakes"
    )
    p.add_argument("--doctors", type=int, default=d.doctors, metavar="N", help="on duty")
    p.add_argument("--capacity", type=int, default=d.capacity, metavar="N", help="per doctor")
    p.add_argument(
        "--messages",
        default=f"{d.messages.low}-{d.messages.high}",
        metavar="N|MIN-MAX",
        help="messages each way in a consultation",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="one seed, one plan of arrivals")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--chart", type=Path, metavar="FILE.png", help="write a PNG chart")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def scenario_of(args: argparse.Namespace) -> Scenario:
    """The scenario the flags describe (ScenarioError when one is wrong)."""
    return Scenario(
        url=args.url,
        duration_s=args.duration,
        max_patients=args.max_patients,
        rate_per_min=args.rate,
        profile=load_profile(args.profile) if args.profile else None,
        departments=parse_mix(args.departments),
        red_flag_share=args.red_flags,
        doctors=args.doctors,
        capacity=args.capacity,
        response_s=args.response,
        messages=parse_range(args.messages),
        think_s=args.think,
        patience_s=args.patience,
        drain_s=args.drain,
        seed=args.seed,
    )


def secret_of(loaded: LoadedConfig, given: str | None) -> str | None:
    """--secret, else the configured secret, else the one the service keeps in its data
    directory (read, never created: a new one would not be the service's)."""
    if given:
        return given
    if loaded.config.auth.token_secret:
        return loaded.config.auth.token_secret
    try:
        return (loaded.data_dir / SECRET_NAME).read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def red_flags_of(loaded: LoadedConfig) -> dict[str, tuple[str, ...]]:
    return {d.id: tuple(sorted(department_red_flags(d))) for d in loaded.config.departments}


def run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from chatsvc.simulate.chart import ChartError, write_chart
    from chatsvc.simulate.progress import ProgressLine
    from chatsvc.simulate.report import build_report, render_text, timeline
    from chatsvc.simulate.runner import SetupError, simulate

    try:
        scenario = scenario_of(args)
    except ScenarioError as error:
        print(f"chatsvc simulate: {error}", file=sys.stderr)
        return EXIT_BAD_ARGS
    secret = secret_of(loaded, args.secret)
    if secret is None:
        print(
            f"chatsvc simulate: no token secret in {loaded.source} or its data directory: "
            "pass the service's --config or --secret",
            file=sys.stderr,
        )
        return EXIT_BAD_ARGS
    progress = None if args.quiet else ProgressLine(scenario.duration_s)
    try:
        journal = asyncio.run(
            simulate(
                scenario,
                secret,
                red_flags_of(loaded),
                progress,
                args.allow_remote,
                args.allow_busy_desk,
            )
        )
    except SetupError as error:
        print(f"chatsvc simulate: {error}", file=sys.stderr)
        return EXIT_FAILED
    report = build_report(journal)
    print(report.to_json() if args.json else render_text(report))
    if args.chart:
        try:
            write_chart(timeline(journal), args.chart, f"chatsvc simulate, seed {scenario.seed}")
        except ChartError as error:
            print(f"chatsvc simulate: {error}", file=sys.stderr)
            return EXIT_FAILED
    return 0
