"""The command line: `relay run`, `relay config-check`, and the rest of SPEC 6."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from relay import __version__

DEFAULT_CONFIG = "/etc/relay/relay.toml"
EX_USAGE = 2
EX_CONFIG = 78


def _config_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument(
        "-c", "--config", required=required,
        default=None if required else os.environ.get("RELAY_CONFIG", DEFAULT_CONFIG),
        help=f"configuration file (default: $RELAY_CONFIG or {DEFAULT_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="Failover stream relay for live-commerce studios."
    )
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    _config_arg(p)

    p = sub.add_parser("config-check", help="validate a configuration and print it, secrets redacted")
    _config_arg(p, required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("check", help="pre-show health check: exit 0 all pass, 1 warnings, 2 a failure")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds to watch each input (default 10)")

    # Commands to a running relay, over MQTT (SPEC 7); they print the reply.
    p = sub.add_parser("status", help="print the running relay's state (retained on MQTT)")
    _remote_args(p)
    p = sub.add_parser("failover", help="switch away from the active input")
    _remote_args(p)
    p.add_argument("--to", help="input to switch to (default: best healthy backup)")
    p = sub.add_parser("failback", help="return to the most preferred healthy input")
    _remote_args(p)
    p = sub.add_parser("switch", help="put an input on air")
    _remote_args(p)
    p.add_argument("to", help="input id (or 'slate')")
    p.add_argument("--force", action="store_true", help="even if it is failing (manual mode only)")
    p = sub.add_parser("mode", help="set the failover mode")
    _remote_args(p)
    p.add_argument("mode", choices=["auto", "manual"])
    p = sub.add_parser("failback-policy", help="set the failback policy")
    _remote_args(p)
    p.add_argument("policy", choices=["auto", "manual"])
    p = sub.add_parser("drill", help="rehearse the backup: switch for N seconds, verify, return")
    _remote_args(p)
    p.add_argument("--to", help="input to drill (default: best healthy backup)")
    p.add_argument("--seconds", type=float, default=10.0)
    p = sub.add_parser("output", help="move an output to one of its ingest URLs")
    _remote_args(p)
    p.add_argument("output", help="output id")
    p.add_argument("url_index", type=int, help="index into the output's urls (0 = primary)")
    p = sub.add_parser("ping", help="check that the relay answers commands")
    _remote_args(p)

    p = sub.add_parser("report", help="write the post-show review of a session as one HTML file")
    _config_arg(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--session", help="session id (see --list)")
    which.add_argument("--last", action="store_true", help="the most recent session (default)")
    which.add_argument("--list", action="store_true", help="list the recorded sessions")
    p.add_argument("-o", "--output", help="HTML file to write")
    p.add_argument("--journal", help="journal file (default: [journal] path of the configuration)")

    p = sub.add_parser("demo", help="run a complete local studio and show failovers live")
    p.add_argument("--workdir", help="where to keep the demo's files (default: a temporary directory)")
    p.add_argument("--fast", action="store_true", help="shorter pauses between the injected faults")
    return parser


REMOTE_COMMANDS = {"status", "failover", "failback", "switch", "mode", "failback-policy", "drill",
                   "output", "ping"}


def _remote_args(p: argparse.ArgumentParser) -> None:
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EX_USAGE
    if args.command == "config-check":
        from relay.config import config_check

        return config_check(args.config, as_json=args.json)
    if args.command == "run":
        from relay.config import load_or_exit

        settings = load_or_exit(args.config)  # before anything heavy is imported: a bad config exits 78
        from relay.daemon import run

        return run(settings)
    if args.command in REMOTE_COMMANDS:
        from relay.control.remote import run_remote

        return run_remote(args)
    if args.command == "check":
        from relay.preflight import run_check

        return run_check(args)
    if args.command == "report":
        from relay.journal.report import run_report

        return run_report(args)
    if args.command == "demo":
        from relay.demo import run_demo

        return run_demo(args)
    parser.error(f"unknown command {args.command}")
    return EX_USAGE
