"""python -m engine run SERVICE --config FILE   (SERVICE: feed, strategy, risk, execution, all)
python -m engine check-config --config FILE

A bad config is refused before anything starts: one line per problem on stderr, each naming its
field, and exit code 2 (the same for `run` and `check-config`)."""

from __future__ import annotations

import argparse
import sys

from engine.config import SERVICES, ConfigProblems, load_settings
from engine.core.errors import ConfigError
from engine.strategy.registry import STRATEGY_PARAMS


def config_error_lines(error: ConfigError) -> list[str]:
    """What to print for a refused config: every problem on its own line."""
    lines = error.lines() if isinstance(error, ConfigProblems) else [str(error)]
    return [f"stormproof engine: {line}" for line in lines]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one engine service, or all of them in one process")
    run.add_argument("service", choices=[*SERVICES, "all"])
    run.add_argument("--config", required=True, help="engine TOML config file")
    check = sub.add_parser(
        "check-config", help="validate a config file: every bad field, or 'config ok'"
    )
    check.add_argument("--config", required=True, help="engine TOML config file")
    args = parser.parse_args(argv)
    try:
        needs_journal = getattr(args, "service", "all") in ("execution", "all")
        settings = load_settings(
            args.config, strategy_params=STRATEGY_PARAMS, needs_journal=needs_journal
        )
    except ConfigError as exc:
        for line in config_error_lines(exc):
            print(line, file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"config ok: {settings.path}")
        return 0
    from engine.app import main_run

    return main_run(settings, args.service)


if __name__ == "__main__":
    sys.exit(main())
