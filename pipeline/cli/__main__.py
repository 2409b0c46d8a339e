"""`python -m pipeline.cli`: the command line, as the `beemon-uploader` script runs it."""

from pipeline.cli.main import console

raise SystemExit(console())
