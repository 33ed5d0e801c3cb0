"""Make the tiny RePIC model that ships in the package from a finished ``repic demo`` run.

``python -m repic.world.ship DEMO_RUN [--out DIR]`` copies ``DEMO_RUN/runs/repic-s<S>/final`` (the lowest
training seed) into ``repic/assets/tiny-repic`` and writes ``shipped_record.json`` beside it: the run it
came from, its recipe and seed, the box style it answers in, the demo's numbers for it, and the command
that rebuilds it. The copy is atomic: an interrupted ship leaves the previous model whole.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_folder, atomic_write_json
from ..errors import RepicError
from ..shipped import SHIPPED_RECORD, SHIPPED_REPIC

KEPT = ("config.json", "generation_config.json", "model.safetensors", "chat_template.jinja", "processor_config.json",
        "tokenizer.json", "tokenizer_config.json")
REBUILD = "repic demo --out DEMO_RUN --fresh && python -m repic.world.ship DEMO_RUN"


def demo_model(run: Path) -> tuple[Path, int]:
    """The final folder of the demo run's RePIC model of the lowest training seed, and that seed."""
    finals = sorted((int(final.parent.name.rsplit("-s", 1)[1]), final)
                    for final in (run / "runs").glob("repic-s*/final") if (final / "config.json").is_file())
    if not finals:
        raise RepicError(f"{run} holds no finished RePIC model (runs/repic-s*/final); run `repic demo --out {run}`")
    seed, final = finals[0]
    return final, seed


def shipped_record(run: Path, final: Path, seed: int) -> dict[str, Any]:
    """What the shipped model is: recipe, seed, box style, the demo's numbers for it, how to rebuild it."""
    config = yaml.safe_load((final.parent / "config.yaml").read_text(encoding="utf-8"))
    results_file = run / "report" / "results.json"
    if not results_file.is_file():
        raise RepicError(f"{results_file} is missing: the demo run did not finish its report; run it to the end")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    per_seed = (results.get("per_seed") or {}).get("repic") or []
    numbers = next((row for row in per_seed if row.get("seed") == seed), None)
    if numbers is None:  # a one-seed run: the models table is that seed's
        numbers = next(row for row in results["models"] if row["label"] == "repic")
    return {
        "what": "the tiny base after the demo's RePIC post-training (GRPO on OCT, VLT and ICT)",
        "demo_run": run.name, "run": final.parent.name, "training_seed": seed, "recipe": _portable(config, run),
        "box_style": config["data"]["box_style"], "demo_results": numbers,
        "demo_results_note": "evaluated by the demo on its held-out concepts, one seed on one CPU",
        "rebuild": REBUILD,
    }


def _portable(value: Any, run: Path) -> Any:
    """``value`` with paths inside the demo run written from ``DEMO_RUN`` (where it was trained stays here)."""
    if isinstance(value, dict):
        return {key: _portable(item, run) for key, item in value.items()}
    if isinstance(value, list):
        return [_portable(item, run) for item in value]
    if isinstance(value, str):
        for root in {str(run), str(run.resolve())}:
            if value == root or value.startswith(root + "/"):
                return "DEMO_RUN" + value[len(root):]
    return value


def ship(run: Path, out: Path = SHIPPED_REPIC) -> Path:
    """Copy the demo run's RePIC model to ``out`` with its record (see the module)."""
    final, seed = demo_model(run)
    record = shipped_record(run, final, seed)
    meta = json.loads((final / "repic_run.json").read_text(encoding="utf-8"))
    with atomic_folder(out) as staging:
        for name in KEPT:
            if (final / name).is_file():
                shutil.copy2(final / name, staging / name)
        # Where it was trained is this machine's business; what it answers in travels with it.
        atomic_write_json(staging / "repic_run.json", {
            "method": meta.get("method"), "finetune": meta.get("finetune"), "steps": meta.get("steps"),
            "box_style": record["box_style"]})
        atomic_write_json(staging / SHIPPED_RECORD, record)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repic.world.ship", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished `repic demo` run folder")
    parser.add_argument("--out", type=Path, default=SHIPPED_REPIC, help="where the model goes (default: the package)")
    args = parser.parse_args(argv)
    try:
        out = ship(args.run, args.out)
    except RepicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"shipped {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
