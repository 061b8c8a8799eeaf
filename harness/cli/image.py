"""`stormproof image build|list`: the images stormproof runs on Kubernetes, assembled without a
container builder or registry (harness.image, docs/image.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import console, fail, progress_printer
from harness.errors import HarnessError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The OCI images of the deployment: built from Debian packages and the pinned wheels.",
)

OutDir = Annotated[Path | None, typer.Option("--out", help="the archives' directory")]


@app.command("build")
def build(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="images to build (stormproof redis postgres toxiproxy pause); all"),
    ] = None,
    out: OutDir = None,
) -> None:
    """Build the images whose archive is missing or stale; the others cost a hash each."""
    from harness.image.build import DEFAULT_OUT, build_images

    try:
        built = build_images(
            only=names or (), out_dir=out or DEFAULT_OUT, progress=progress_printer()
        )
    except HarnessError as exc:
        fail(str(exc))
    for image in built:
        state = "cached" if image.cached else f"built in {image.seconds:.1f} s"
        size_mib = image.archive_bytes / 2**20
        console.print(f"{image.ref}  {image.digest[:19]}  {size_mib:.1f} MiB  {state}")
        console.print(f"  {image.archive}")


@app.command("list")
def list_images(
    out: OutDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the index as JSON")] = False,
) -> None:
    """What the last builds wrote (images.json)."""
    from harness.image.build import DEFAULT_OUT, read_index

    index = read_index(out or DEFAULT_OUT)
    if as_json:
        print(json.dumps(index, indent=2, sort_keys=True))
        return
    for name, entry in sorted(index.items()):
        console.print(f"{name:11} {entry.get('ref')}  {str(entry.get('digest'))[:19]}")
