"""python -m engine run SERVICE --config FILE   (SERVICE: feed, strategy, risk, execution, all)"""

from __future__ import annotations

import argparse
import sys

from engine.config import SERVICES, load_settings
from engine.core.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one engine service, or all of them in one process")
    run.add_argument("service", choices=[*SERVICES, "all"])
    run.add_argument("--config", required=True, help="engine TOML config file")
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"stormproof engine: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"config ok: {settings.path}")
        return 0
    from engine.runtime.runner import main_run

    return main_run(settings, args.service)


if __name__ == "__main__":
    sys.exit(main())
