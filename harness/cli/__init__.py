"""The `stormproof` command line (`harness.cli.app`), one module per subcommand group."""
