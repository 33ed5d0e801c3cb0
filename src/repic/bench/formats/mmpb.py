"""MMPB (``AIDASLab/MMPB``), as its ``scripts/hf_to_mmpb_all.py`` materialises it: ``dataset.csv`` (one QA
per row) with the concept images under ``<attribute>/train/<name>/{0..4}.png`` and the query images at each
row's ``image_path``. Options A-D become choice rows; Yes/No recognition rows recognition rows (``target``
Homo / Hetro says whether a negative is of the same category); other Yes/No and free answers open rows.
See ``docs/bench/mmpb.md``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ...errors import RepicError
from ..rows import Manifest
from ._common import Importer, images_in, letter_index

COLUMNS = ("index", "question", "answer", "image_path", "name", "attribute", "category")
LEVELS = ("description_simple", "description_moderate", "description_detailed", "description_super_detailed")
NEGATIVES = {"homo": "same_category", "hetro": "other_category"}
_YES_NO = {"4": "yes", "5": "no", "yes": "yes", "no": "no"}  # hf_to_mmpb_all.py: HF answer 4 -> Yes, 5 -> No


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    imp = Importer("mmpb", src, out)
    path = imp.require(src / "dataset.csv", "dataset.csv (scripts/hf_to_mmpb_all.py's output)")
    reader = csv.DictReader(io.StringIO(imp.read_text(path)))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RepicError(f"{path}: expected the columns {', '.join(COLUMNS)}; missing {', '.join(missing)}")
    for number, record in enumerate(reader, start=2):
        where = f"dataset.csv line {number} (index {record['index']})"
        name, attribute = record["name"].strip(), record["attribute"].strip()
        tag = imp.tag(name)
        if tag not in imp.concepts:
            descriptions = {level: record.get(level) or "" for level in LEVELS}
            imp.concept(name, attribute or "object", images_in(src / attribute / "train" / name),
                        info=descriptions["description_moderate"],
                        extra={"descriptions": descriptions, "preference": record.get("preference") or ""})
        options = [record.get(letter) or "" for letter in "ABCD"]
        options = options[: next((i for i, o in enumerate(options) if not o.strip()), 4)]
        answer = record["answer"].strip()
        extra = {"category": record["category"], "l2-category": record.get("l2-category", ""),
                 "attribute": attribute, "target": record.get("target", "")}
        fields = dict(question=record["question"], concepts=[tag], image=imp.locate(record["image_path"], src),
                      source=where, extra=extra)
        index = int(answer) if answer.isdigit() and int(answer) < 4 else letter_index(answer, len(options))
        yes_no = _YES_NO.get(answer.lower())
        if len(options) >= 2 and index is not None and index < len(options):
            imp.row(kind="choice", options=options, answer=index, **fields)
        elif yes_no and record["category"].strip() == "recognition":
            negative = NEGATIVES.get((record.get("target") or "").strip().lower()) if yes_no == "no" else None
            imp.row(kind="recognition", answer=yes_no, negative=negative, **fields)
        elif yes_no:
            imp.row(kind="open", answer=yes_no, **fields)
        elif answer:
            imp.row(kind="open", answer=answer, **fields)
        else:
            raise RepicError(f"{where}: the answer is empty")
    return imp.finish()
