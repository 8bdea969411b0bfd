"""The command line: `relay run`, `relay config-check`, and the rest of BEHAVIOUR §6."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from relay import version

if TYPE_CHECKING:
    from relay.control.commands import Request

DEFAULT_CONFIG = "/etc/relay/relay.toml"
EX_USAGE = 2


def _config_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument(
        "-c", "--config", required=required,
        default=None if required else os.environ.get("RELAY_CONFIG", DEFAULT_CONFIG),
        help=f"configuration file (default: $RELAY_CONFIG or {DEFAULT_CONFIG})",
    )


class _Version(argparse.Action):
    """`relay --version`, with the version read only when asked for (see relay.version)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"relay {version()}")
        parser.exit()


def _demo(args: argparse.Namespace) -> int:
    """`relay demo` runs the local studio of a development checkout (studio/, which
    ./scripts/setup makes importable); Relay as installed on a studio PC does not carry it."""
    try:
        from studio.demo import run_demo  # the one import of the harness from relay/ (test_layout)
    except ModuleNotFoundError as e:
        if e.name not in ("studio", "studio.demo"):
            raise
        print("relay demo runs from a development checkout of Relay: ./scripts/demo there "
              "(it sets up what the demo needs)", file=sys.stderr)
        return EX_USAGE
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="Failover stream relay for live-commerce studios."
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _run_args(sub.add_parser("run", help=RUN_HELP))

    p = sub.add_parser("config-check", help="validate a configuration and print it, secrets redacted")
    _config_arg(p, required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("check", help="pre-show health check: exit 0 all pass, 1 warnings, 2 a failure")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds to watch each input (default 10)")

    # Commands to a running relay, over MQTT (BEHAVIOUR §7); they print the reply.
    from relay.control.commands import COMMANDS

    p = sub.add_parser("status", help="print the running relay's state (retained on MQTT)")
    _remote_args(p)
    for spec in COMMANDS.values():
        if spec.cli:
            p = sub.add_parser(spec.cli_name, help=spec.summary)
            _remote_args(p)
            for flags, options in command_arguments(spec.request):
                p.add_argument(*flags, **options)

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

    p = sub.add_parser("dashboard", help="the fleet page on a monitoring PC: every relay on an MQTT broker")
    _config_arg(p)
    p.add_argument("--broker", help="HOST[:PORT] of the MQTT broker (default: [mqtt] host and port of -c)")
    p.add_argument("--listen", default=None,
                   help="host:port to serve on (default: [http] listen of -c, else 127.0.0.1:8090)")

    sub.add_parser("hash-password", help="print the hash of a dashboard password, for [http] users "
                                         "(reads it from the terminal, or one line on stdin)")
    return parser


RUN_HELP = "run the daemon until SIGTERM/SIGINT"


def _run_args(p: argparse.ArgumentParser) -> None:
    _config_arg(p)


def remote_commands() -> set[str]:
    """`relay status` and every command of the registry the command line sends."""
    from relay.control.commands import COMMANDS

    return {"status"} | {spec.cli_name for spec in COMMANDS.values() if spec.cli}


def command_arguments(model: type[Request]) -> list[tuple[list[str], dict[str, Any]]]:
    """A command's fields as argparse arguments: required ones positional, the others
    ``--options``, a flag for a boolean; choices, types and help from the model. What
    the model then refuses (a limit) is bad usage too: see relay.control.remote."""
    from relay.control.commands import CliDefault

    arguments: list[tuple[list[str], dict[str, Any]]] = []
    for name, info in model.model_fields.items():
        if name == "transaction":
            continue
        kind = _plain_type(info.annotation)
        options: dict[str, Any] = {"help": info.description}
        cli_default = next((m.value for m in info.metadata if isinstance(m, CliDefault)), None)
        if kind is bool:
            arguments.append(([f"--{name.replace('_', '-')}"], {**options, "action": "store_true",
                                                                "dest": name}))
            continue
        if get_origin(kind) is Literal:
            options["choices"] = list(get_args(kind))
        else:
            options["type"] = kind
        if info.is_required() and cli_default is None:
            arguments.append(([name], options))
        else:
            default = cli_default if cli_default is not None else info.default
            arguments.append(([f"--{name.replace('_', '-')}"], {**options, "default": default, "dest": name}))
    return arguments


def _plain_type(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` → ``X``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _remote_args(p: argparse.ArgumentParser) -> None:
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        # `relay run` must listen within 1 s of starting (BEHAVIOUR §10): it reads only what it
        # needs, without the other commands' models.
        run = argparse.ArgumentParser(prog="relay run", description=RUN_HELP)
        _run_args(run)
        return _run(run.parse_args(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EX_USAGE
    if args.command == "config-check":
        from relay.config import config_check

        return config_check(args.config, as_json=args.json)
    if args.command == "run":
        return _run(args)
    if args.command == "reload":
        from relay.config import load_or_exit

        settings = load_or_exit(args.config)
        if not settings.mqtt.enabled:  # no MQTT: SIGHUP, and the answer from the journal
            from relay.control.signal_reload import reload_by_signal

            return reload_by_signal(settings, args.config, DEFAULT_CONFIG)
    if args.command in remote_commands():
        from relay.control.remote import run_remote

        return run_remote(args)
    if args.command == "check":
        from relay.check import run_check

        return run_check(args)
    if args.command == "report":
        from relay.journal.report import run_report

        return run_report(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "hash-password":
        return _hash_password()
    if args.command == "dashboard":
        return _dashboard(args)
    parser.error(f"unknown command {args.command}")
    return EX_USAGE


def _run(args: argparse.Namespace) -> int:
    from relay.early_listen import EarlyListeners

    # Encoders connecting while the rest imports are held, not refused (they would wait
    # their retry delay): relay/early_listen.py. First from a plain read of the file...
    early = EarlyListeners.guess(args.config)
    from relay.config import load_or_exit

    settings = load_or_exit(args.config)  # before anything heavy is imported: a bad config exits 78
    early.settle(settings)  # ...then what the validated configuration says
    from relay.daemon import run

    return run(settings, early)


def _hash_password() -> int:
    import getpass

    from relay.control.http.auth import hash_password
    from relay.i18n import from_environment, t

    lang = from_environment()  # staff read these: LANG=zh_CN.UTF-8 gives Chinese
    if sys.stdin.isatty():
        password = getpass.getpass(t(lang, "cli.password_prompt"))
        if getpass.getpass(t(lang, "cli.password_again")) != password:
            print(t(lang, "cli.passwords_differ"), file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print(t(lang, "cli.password_empty"), file=sys.stderr)
        return EX_USAGE
    print(hash_password(password))
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    """`relay dashboard`: accounts and broker credentials come from a Relay configuration
    file (any studio's: only its [mqtt] and [http] are used), --broker and --listen override."""
    import asyncio

    from relay.config import EX_CONFIG, load_or_exit
    from relay.control.http.dashboard import serve_fleet
    from relay.i18n import from_environment, t
    from relay.log import configure

    settings = load_or_exit(args.config)
    mqtt, http = settings.mqtt, settings.http
    if args.broker:
        host, _, port = args.broker.rpartition(":") if ":" in args.broker else (args.broker, "", "")
        if port and not port.isdigit():
            print(t(from_environment(), "cli.dashboard_broker", broker=repr(args.broker)), file=sys.stderr)
            return EX_USAGE
        mqtt = mqtt.model_copy(update={"host": host or args.broker, **({"port": int(port)} if port else {})})
    listen = args.listen or http.listen or "127.0.0.1:8090"
    http = http.model_copy(update={"listen": listen})
    if not http.users:
        print(t(from_environment(), "cli.dashboard_no_users"), file=sys.stderr)
        return EX_CONFIG
    configure(settings.log.level)
    asyncio.run(serve_fleet(mqtt, http, f"{settings.id}-fleet"))
    return 0
