"""Retrieval with a model's own vision tower (``tower:MODEL``): token views alone against token views plus
half-size windows, side by side on the same queries.

For each ``repic data build`` folder given, the held-out database (``eval/database.json``) is indexed with
the tower, and every query of ``eval/single.jsonl`` and ``eval/two.jsonl`` is retrieved twice: with
``use_grid_crops=False`` (the query's tokens and 2 x 2 token blocks only) and with the default (those plus
81 half-size windows embedded as references are). It reports, per build and query set, the share of
queries whose first retrieved concept is in the image, the share of true concepts among the top K, and
the median and 95th-percentile latency per query (end to end: embedding, search, ranking). One JSON line.

Usage: python benchmarks/tower_retrieval.py BUILD [BUILD ...] [--model DIR] [--top-k 2] [--threads 1]

The builds of the demo's world and of two other seeds (``repic data synth --seed S --scenes
n_eval_single=96 --scenes n_eval_two=64`` then ``repic data build``) are the ones quoted in
``repic.concepts.retrieve``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from repic.concepts.database import load_database
from repic.concepts.embed import load_embedder
from repic.concepts.retrieve import open_retriever
from repic.inference import read_eval_file


def measure(build: Path, model: str, top_k: int) -> dict:
    """The numbers of one build: per query set and view choice."""
    database = load_database(build / "eval" / "database.json")
    embedder = load_embedder(f"tower:{model}")  # loaded once, for both view choices
    out: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "tower.index.json"  # the build's own index (another embedder's) is left alone
        for name, windows in (("tokens", False), ("tokens_and_windows", True)):
            retriever, _ = open_retriever(database, embedder=embedder, k=top_k, use_grid_crops=windows,
                                          index_path=index)  # fmt: skip
            for split in ("single", "two"):
                hits, found_share, seconds = [], [], []
                for query in read_eval_file(build / "eval" / f"{split}.jsonl"):
                    with Image.open(query.image) as image:
                        picture = image.convert("RGB")
                    started = time.perf_counter()
                    found = [concept.tag for concept in retriever.retrieve(picture)]
                    seconds.append(time.perf_counter() - started)
                    hits.append(found[0] in query.concepts)
                    found_share.append(len(set(found) & set(query.concepts)) / len(query.concepts))
                out.setdefault(split, {})[name] = {
                    "queries": len(hits),
                    "top1": round(float(np.mean(hits)), 3),
                    "recall_at_k": round(float(np.mean(found_share)), 3),
                    "median_ms": round(float(np.median(seconds)) * 1000, 1),
                    "p95_ms": round(float(np.percentile(seconds, 95)) * 1000, 1),
                }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", type=Path, help="repic data build output folders")
    parser.add_argument("--model", help="the model whose tower embeds (default: the shipped tiny base)")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from repic.shipped import shipped_base_path

    torch.set_num_threads(args.threads)
    model = args.model or str(shipped_base_path())
    summary = {"model": model, "top_k": args.top_k, "threads": args.threads,
               "builds": {str(build): measure(build, model, args.top_k) for build in args.builds}}  # fmt: skip
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
