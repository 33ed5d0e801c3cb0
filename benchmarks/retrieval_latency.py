"""Retrieval over a large database: build time of a 10,000-concept index and top-K query latency.

Synthetic concepts are drawn in memory, each a 56 x 56 reference image of a random shape in one of several
colours with a second-colour pattern (stripes, dots or a band) on a light background, like the concept
world's references. The benchmark

1. embeds every reference with the built-in colour embedder and builds the FAISS index (build time, and the
   time to save the index next to a database file and to read it back);
2. answers queries (112 x 112 scenes holding one of the concepts, scaled and placed at random, asked
   with the official caption question) with ``Retriever.retrieve``: names in the question are looked
   up, the whole image plus nine grid crops are embedded and searched, top K concepts returned. Latency is reported per query, end to end (embedding included), and for the search and
   ranking alone (embeddings precomputed), as median and 95th percentile.

It prints one JSON line. The target on a 2-core CPU is a median under 10 ms per query, end to end. The
top-K hit rate is printed too, but with 12 colours among 10,000 concepts many concepts share their colours,
which a colour embedder cannot tell apart: the hit rate says nothing about retrieval on a real database.

Usage: python benchmarks/retrieval_latency.py [--concepts 10000] [--queries 200] [--top-k 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image, ImageDraw

from repic.concepts.database import ConceptDatabase
from repic.concepts.embed import ColourEmbedder
from repic.concepts.index import ConceptIndex, read_index, save_index
from repic.concepts.retrieve import Retriever, grid_crops
from repic.prompts import eval_question
from repic.records import Concept

TARGET_MS = 10.0
COLOURS = [(220, 40, 40), (40, 90, 220), (40, 170, 60), (240, 200, 40), (150, 60, 200), (240, 130, 30),
           (120, 80, 40), (250, 250, 250), (30, 30, 30), (240, 120, 180), (60, 200, 200), (128, 128, 128)]


def concept_image(rng: np.random.Generator, side: int = 56) -> Image.Image:
    """A random shape in a random colour, with a pattern in a second colour, on a light background."""
    background = tuple(int(v) for v in rng.integers(200, 256, 3))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    body, accent = (COLOURS[i] for i in rng.choice(len(COLOURS), 2, replace=False))
    box = (int(rng.integers(2, 12)), int(rng.integers(2, 12)), int(rng.integers(44, 54)), int(rng.integers(44, 54)))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=body, outline=(20, 20, 20))
    pattern = rng.integers(3)
    for step in range(box[0] + 4, box[2] - 2, 8):
        if pattern == 0:
            draw.line((step, box[1] + 4, step, box[3] - 4), fill=accent, width=3)
        elif pattern == 1:
            draw.ellipse((step, (box[1] + box[3]) // 2 - 3, step + 5, (box[1] + box[3]) // 2 + 2), fill=accent)
    if pattern == 2:
        draw.rectangle((box[0] + 4, box[1] + 4, box[2] - 4, box[1] + 12), fill=accent)
    return image


def scene_with(reference: Image.Image, rng: np.random.Generator, side: int = 112) -> Image.Image:
    scene = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(190, 256, 3)))
    size = int(rng.integers(40, 70))
    scene.paste(reference.resize((size, size)), (int(rng.integers(0, side - size)), int(rng.integers(0, side - size))))
    return scene


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds) * 1000
    return {"median_ms": round(float(np.median(values)), 3), "p95_ms": round(float(np.percentile(values, 95)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="FAISS / numpy threads")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    started = time.perf_counter()
    references = [concept_image(rng) for _ in range(args.concepts)]
    draw_seconds = time.perf_counter() - started

    embedder = ColourEmbedder()
    database = ConceptDatabase()  # in memory: the images never touch the disk
    tags = [f"<c{number:05d}>" for number in range(args.concepts)]
    for tag in tags:
        database.concepts[tag] = Concept(tag, tag[1:-1], "thing", "", [Path(f"/memory/{tag[1:-1]}.png")])
    started = time.perf_counter()
    vectors = np.concatenate([embedder.embed(references[i : i + 256]) for i in range(0, len(references), 256)])
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = ConceptIndex(embedder.id, "synthetic", tags, [str(c.images[0]) for c in database], vectors)
    add_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        save_index(index, Path(folder) / "database.json")
        save_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reread, _ = read_index(Path(folder) / "database.json")
        read_seconds = time.perf_counter() - started
    assert reread is not None and len(reread.tags) == args.concepts

    retriever = Retriever(database, index, embedder, k=args.top_k)
    chosen = rng.choice(args.concepts, args.queries, replace=False)
    scenes = [scene_with(references[i], rng) for i in chosen]
    question = eval_question(0)  # names are looked up in every question, so the lookup is timed too
    retriever.retrieve(scenes[0], question)  # warm-up
    end_to_end, hits = [], 0
    for number, scene in zip(chosen, scenes, strict=True):
        started = time.perf_counter()
        found = retriever.retrieve(scene, question)
        end_to_end.append(time.perf_counter() - started)
        hits += tags[number] in [f.tag for f in found]
    views = [[scene, *grid_crops(scene)] for scene in scenes]
    embedded = [embedder.embed(view) for view in views]
    names = ["image"] + [f"grid {n}" for n in range(1, 10)]
    search_only = []
    for vectors_of_query in embedded:
        started = time.perf_counter()
        retriever.rank(vectors_of_query, names)
        search_only.append(time.perf_counter() - started)

    report = {
        "concepts": args.concepts,
        "dim": int(vectors.shape[1]),
        "queries": args.queries,
        "top_k": args.top_k,
        "threads": args.threads,
        "build": {
            "draw_images_s": round(draw_seconds, 2),
            "embed_s": round(embed_seconds, 2),
            "faiss_add_s": round(add_seconds, 4),
            "save_s": round(save_seconds, 3),
            "read_s": round(read_seconds, 3),
        },
        "query_end_to_end": percentiles(end_to_end),
        "query_search_and_rank": percentiles(search_only),
        "top_k_hit_rate": round(hits / args.queries, 3),
        "target_ms": TARGET_MS,
    }
    report["meets_target"] = report["query_end_to_end"]["median_ms"] < TARGET_MS
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
