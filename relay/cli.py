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
    return parser


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
    parser.error(f"unknown command {args.command}")
    return EX_USAGE
