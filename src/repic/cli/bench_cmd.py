"""``repic bench``: import a benchmark of the field into a repic folder, answer it with a model, score it.

``import`` (``repic.cli.bench_import_cmd``), ``run`` and ``score`` (``repic.cli.bench_run_cmd``) are thin
fronts over ``repic.bench``.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="The field's personalization benchmarks: import, run, score.", no_args_is_help=True)
