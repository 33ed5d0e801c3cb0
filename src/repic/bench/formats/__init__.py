"""Each benchmark of the field read from its own on-disk layout into one benchmark folder (``repic.bench.rows``).

``FORMATS`` maps a format's name (``repic bench import FORMAT``) to its ``import_benchmark(src, out)``, which
writes a new folder ``out``; ``import_folder`` runs one into a staging folder and swaps it in, so a failed
import leaves ``--out`` as it was. The sources and the flaws of their own scoring scripts: ``docs/bench/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ...errors import RepicError
from ...outputs import replace_folder
from ..rows import MANIFEST, Manifest
from . import dreambooth, mc_llava, mmpb, myvlm, perva, rap, repic, yollava


class Format(NamedTuple):
    function: Callable[[Path, Path], Manifest]
    description: str


FORMATS: dict[str, Format] = {
    "myvlm": Format(myvlm.import_benchmark, "MyVLM objects: <concept>/captions.json and images (captioning, LLaVA VQA)"),
    "yollava": Format(yollava.import_benchmark, "Yo'LLaVA: test folders (recognition with negatives), visual and text-only QA"),
    "rap": Format(rap.import_benchmark, "RAP-MLLM: database.json and eval/ (recognition, visual QA, text QA, captions)"),
    "mc-llava": Format(mc_llava.import_benchmark, "MC-LLaVA two- and three-concept scenarios (files read as its code reads them)"),
    "mmpb": Format(mmpb.import_benchmark, "MMPB: dataset.csv with <attribute>/train/<name>/ concept images"),
    "perva": Format(perva.import_benchmark, "PerVA (R2P): {train,test}/<category>/<concept>/ (recognition, all pairs)"),
    "dreambooth": Format(dreambooth.import_benchmark, "DreamBooth: dataset/<subject>/ and prompts_and_classes.txt"),
    "repic": Format(repic.import_benchmark, "RePIC: one data/query_tot/<set>_query_templates.json and its database"),
}


def import_folder(format: str, src: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False) -> Manifest:
    """Import ``src`` in ``format`` into the benchmark folder ``out`` (built aside, swapped in at the end)."""
    if format not in FORMATS:
        raise RepicError(f"unknown benchmark format {format!r}; use one of {', '.join(FORMATS)}")
    src = Path(src)
    if not src.exists():
        raise RepicError(f"{src} does not exist; give the folder (or file) of the {format} benchmark")
    with replace_folder(out, marker=MANIFEST, inputs=[src], overwrite=overwrite) as staging:
        manifest = FORMATS[format].function(src, staging)
    return manifest
