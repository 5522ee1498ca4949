"""`migwatch` command line: argparse, and the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from migwatch import __version__
from migwatch.errors import ExitCode, UsageError, UserError

if TYPE_CHECKING:
    from migwatch.config import Config

# Every other migwatch module is imported where it is used: `migwatch --version` and `migwatch guard`
# (which wraps every Prisma command) must start in tens of milliseconds, and psycopg, jsonschema,
# yaml and the pipeline together take ~0.6 s to import. tests/test_startup.py keeps it that way.

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = (
    ExitCode.OK,
    ExitCode.PROBLEMS,
    ExitCode.USAGE,
    ExitCode.INTERNAL,
    ExitCode.INTERRUPTED,
)
__all__ = ["UsageError", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="migwatch", description="Watches Prisma migrations across git worktrees.")
    parser.add_argument("--version", action="version", version=f"migwatch {__version__}")
    parser.add_argument(
        "--config", type=Path, help="config file (default: $MIGWATCH_CONFIG or the platform config dir)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    status = commands.add_parser("status", help="check once and print a table (or JSON)")
    status.add_argument("--json", action="store_true", help="print the JSON document (version 1)")
    status.add_argument("--project", action="append", default=[], metavar="P", help="only this project")
    status.add_argument("--worktree", type=Path, metavar="PATH", help="only this worktree")
    status.add_argument("--no-color", action="store_true", help="no colour even on a terminal")

    run = commands.add_parser("run", help="the daemon, in the foreground")
    run.add_argument("--once", action="store_true", help="one full cycle with notifications, then exit")

    init = commands.add_parser("init", help="find the repository and write a config")
    init.add_argument(
        "path", nargs="?", type=Path, default=None, help="any checkout (default: current folder)"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    init.add_argument(
        "--print", action="store_true", dest="print_only", help="print the config instead of writing it"
    )

    commands.add_parser("check-config", help="validate the config file")

    service = commands.add_parser("service", help="install/uninstall/status of the user service")
    service.add_argument("action", choices=["install", "uninstall", "status"])
    service.add_argument("--dry-run", action="store_true", help="print what would be done")

    commands.add_parser("notify-test", help="send a test notification through every notifier")

    commands.add_parser("codes", help="list the finding codes: severity, alert title, when each fires")

    demo = commands.add_parser("demo", help="self-contained showcase on SQLite (or --postgres URL)")
    demo.add_argument("--postgres", metavar="URL", help="play the story on this PostgreSQL server instead")

    guard = commands.add_parser(
        "guard", help="run a command unless it would wipe or break the database other worktrees share"
    )
    guard.add_argument("--force", action="store_true", help="run it even if guard refuses (logged)")
    guard.add_argument(
        "--hook",
        choices=["claude-code", "gemini-cli"],
        metavar="AGENT",
        help="answer AGENT's pre-tool-use hook (payload on stdin): claude-code or gemini-cli",
    )
    guard.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command to run")
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    from migwatch.config import default_config_path

    return args.config.expanduser().resolve() if args.config else default_config_path(os.environ)


def _load(args: argparse.Namespace) -> Config:
    from migwatch.config import load_config

    return load_config(_config_path(args), os.environ)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)  # first: a bad config is reported before the pipeline is even imported

    from migwatch.pipeline import CheckOptions, run_status
    from migwatch.report import render_text, to_json
    from migwatch.scrub import scrub

    known = {p.name for p in config.projects}
    unknown = [name for name in args.project if name not in known]
    if unknown:
        raise UsageError(
            f"no project named {unknown[0]!r} in {config.source} (known: {', '.join(sorted(known))})"
        )
    worktree = args.worktree.expanduser().resolve() if args.worktree else None
    report = run_status(config, CheckOptions(env=os.environ), project_names=args.project, worktree=worktree)
    if worktree is not None and not any(p.worktrees for p in report.projects):
        raise UsageError(f"{worktree} is not a worktree of any configured project")
    if args.json:
        import json

        out.write(scrub(json.dumps(to_json(report), indent=2)) + "\n")
    else:
        colour = not args.no_color and out.isatty() and "NO_COLOR" not in os.environ
        out.write(render_text(report, colour=colour))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    from migwatch.display import visible

    config = _load(args)
    out.write(
        f"{visible(config.source)}: ok ({len(config.projects)} project{'s' if len(config.projects) != 1 else ''})\n"
    )
    return EXIT_OK


def cmd_service(args: argparse.Namespace, out: TextIO) -> int:
    from migwatch import service
    from migwatch.config import ConfigError, load_config
    from migwatch.logsetup import default_log_dir

    config_path = _config_path(args)
    ctx = service.default_context(config_path, default_log_dir())
    if args.action == "install":
        return service.install(ctx, dry_run=args.dry_run, out=out)
    if args.action == "uninstall":
        return service.uninstall(ctx, dry_run=args.dry_run, out=out)
    log_file = None
    try:
        config = load_config(config_path, os.environ)
        from migwatch.logsetup import default_log_file

        log_file = config.log.file or default_log_file()
    except ConfigError:
        pass
    return service.status(ctx, out=out, log_file=log_file)


def cmd_notify_test(args: argparse.Namespace, out: TextIO) -> int:
    from migwatch.display import visible
    from migwatch.notify.dispatch import Dispatcher, build_notifiers, notify_test

    config = _load(args)
    notifiers = build_notifiers(
        desktop=config.notifiers.desktop,
        command_argv=config.notifiers.command_argv,
        command_timeout=config.notifiers.command_timeout,
        terminal_stream=None,
    )
    dispatcher = Dispatcher(notifiers)
    try:
        results = notify_test(dispatcher)
    finally:
        dispatcher.close()
    failed = 0
    for name, ok, detail in results:
        out.write(visible(f"{name}: {'ok' if ok else 'FAILED'}{' — ' + detail if detail else ''}") + "\n")
        failed += not ok
    return EXIT_PROBLEMS if failed else EXIT_OK


def cmd_codes(args: argparse.Namespace, out: TextIO) -> int:
    from migwatch.catalogue import KINDS, severity_label

    for kind in KINDS:
        transient = " (held while a migration runs)" if kind.transient else ""
        out.write(f"{kind.code:21} {severity_label(kind):12} {kind.title}{transient}\n")
        out.write(f"{'':21} {'':12} when {kind.when}\n")
    return EXIT_OK


def cmd_guard(args: argparse.Namespace, out: TextIO) -> int:
    from migwatch.guardrun import GuardContext, guard_command, hook_command

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if args.hook and (argv or args.force):
        raise UsageError("migwatch guard: --hook reads the command from the agent's payload on stdin")
    if not args.hook and not argv:
        raise UsageError("migwatch guard: give the command to run after --: migwatch guard -- npx prisma …")
    # The config is read only for a command guard looks at (loading it costs ~0.1 s).
    config = args.config.expanduser().resolve() if args.config else None
    ctx = GuardContext(config_path=config, env=os.environ, err=sys.stderr, verbose=args.verbose)
    if args.hook:
        return hook_command(args.hook, sys.stdin, out, ctx)
    return guard_command(argv, Path.cwd(), ctx, force=args.force)


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "status": cmd_status,
    "check-config": cmd_check_config,
    "service": cmd_service,
    "notify-test": cmd_notify_test,
    "guard": cmd_guard,
    "codes": cmd_codes,
}


def _register_optional() -> None:
    """Commands whose modules import heavier dependencies are looked up lazily."""

    def run(args: argparse.Namespace, out: TextIO) -> int:
        _load(
            args
        )  # a bad config is exit 2 before the daemon's modules are imported (run_command reads it again)
        from migwatch.process import run_command

        return run_command(_config_path(args), once=args.once, verbose=args.verbose, out=out)

    def init(args: argparse.Namespace, out: TextIO) -> int:
        from migwatch.initcmd import init_command

        path = (args.path or Path.cwd()).expanduser().resolve()
        return init_command(path, _config_path(args), force=args.force, print_only=args.print_only, out=out)

    def demo(args: argparse.Namespace, out: TextIO) -> int:
        from migwatch.demo import run_demo

        return run_demo(out=out, postgres_url=args.postgres)

    COMMANDS.setdefault("run", run)
    COMMANDS.setdefault("init", init)
    COMMANDS.setdefault("demo", demo)


_register_optional()


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point of the `migwatch` console script."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.command not in ("run", "guard"):  # guard configures it only for the commands it checks
            from migwatch.logsetup import configure_stderr

            configure_stderr(args.verbose)
        return COMMANDS[args.command](args, out)
    except UserError as exc:  # every error a user can fix: its lines, its exit code (errors.py)
        for line in exc.lines():
            _say(err, redact(line))
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("migwatch: interrupted\n")
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the one place unknown errors become exit 3
        return _internal_error(exc, err)


def redact(text: str) -> str:
    """Passwords out of a message (the dburl module is imported only when there is a message)."""
    from migwatch.dburl import redact as redact_urls

    return redact_urls(text)


def _say(err: TextIO, message: str) -> None:
    """One line on stderr: whatever a path, a name or a driver put in the message stays on that line."""
    from migwatch.display import visible

    err.write(visible(message) + "\n")


TRACE_LINE_LIMIT = 4000


def _internal_error(exc: BaseException, err: TextIO) -> int:
    import traceback
    from datetime import datetime, timezone

    from migwatch.display import visible
    from migwatch.logsetup import append_private, internal_error_log

    path = internal_error_log()
    try:
        header = f"--- {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} migwatch {__version__}\n"
        trace = redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        # `cat internal-errors.log` must not run escapes a migration name or a driver message carried, and
        # one huge exception text must not fill the disk: each line made visible and bounded.
        trace = "".join(f"{visible(line, TRACE_LINE_LIMIT)}\n" for line in trace.splitlines())
        append_private(path, header + trace)  # 0600 in a 0700 folder: paths and URLs
        where = f"the traceback is in {path}"
    except OSError:
        where = "the traceback could not be written"
    _say(err, f"migwatch: internal error: {redact(str(exc)) or type(exc).__name__} ({where})")
    return EXIT_INTERNAL
