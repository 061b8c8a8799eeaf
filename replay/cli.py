"""`replay` command line, the replay's top floor: every subcommand is registered here, once.

    serve    replay a recording with the simulated venue      (replay.cli_serve)
    synth    generate a deterministic synthetic recording     (replay.cli_serve)
    record   record any Binance-protocol endpoint             (replay.cli_record)
    inspect | slice | merge | convert   offline tools         (replay.cli_tools)

The command modules define plain functions and import nothing of this one; their shared helpers
are in `replay.cli_support`.
"""

from __future__ import annotations

import typer

from replay import cli_record, cli_serve, cli_tools

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Record, generate and replay Binance market data.",
)
app.command("serve")(cli_serve.serve)
app.command("synth")(cli_serve.synth)
app.command("record")(cli_record.record)
app.command("inspect")(cli_tools.inspect_command)
app.command("slice")(cli_tools.slice_command)
app.command("merge")(cli_tools.merge_command)
app.command("convert")(cli_tools.convert_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
