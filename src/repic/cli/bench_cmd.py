"""``repic bench``: import a benchmark of the field into a repic folder, answer it with a model, score it.

``import`` (``repic.cli.bench_import_cmd``), ``run`` and ``score`` (``repic.cli.bench_run_cmd``) are thin
fronts over ``repic.bench``.
"""

from __future__ import annotations

import typer

from . import bench_import_cmd, bench_run_cmd

app = typer.Typer(help="The field's personalization benchmarks: import, run, score.", no_args_is_help=True)
app.command("import")(bench_import_cmd.import_command)
app.command("formats")(bench_import_cmd.formats_command)
app.command("run")(bench_run_cmd.run_command)
app.command("score")(bench_run_cmd.score_command)
