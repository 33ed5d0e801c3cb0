"""RAP-MLLM (``Hoar012/RAP-MLLM``): its concept database (``database.json``: ``concept_dict`` of name, image,
info, category) and its evaluation sets under ``eval/``: ``recognition_test.json``, ``yollava-visual-qa.json``,
``yollava-text-only-qa.json`` and caption eval files ``eval/*caption*.json`` (``{image: [concepts]}``). Image
paths are taken from the repository root (``yollava-data/test/...`` placed there). See ``docs/bench/rap.md``.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import RepicError
from ...records import strip_tag
from ..rows import Manifest
from . import yollava
from ._common import Importer

RECOGNITION, CAPTION_QUESTION = "recognition_test.json", "Give a caption of the image."  # caption.py


def read_database(imp: Importer, path: Path, *bases: Path) -> dict[str, str]:
    """Add a RAP / RePIC ``database.json``'s concepts (reference images looked up from ``bases``). Tag -> category."""
    raw = imp.read_json(path, dict, "a concept database {concept_dict: {<tag>: {name, image, info, category}}}")
    entries = raw.get("concept_dict")
    if not isinstance(entries, dict):
        raise RepicError(f"{path}: expected the key 'concept_dict' (an object of concepts); not a concept database")
    categories = {}
    for key, entry in entries.items():
        where = f"{imp.rel(path)}: concept_dict / {key}"
        if not isinstance(entry, dict):
            raise RepicError(f"{where}: expected an object with name, image, info and category")
        images = entry.get("images", entry.get("image", []))
        images = [images] if isinstance(images, str) else images
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise RepicError(f"{where}: 'image' should be a path or a list of paths")
        category = imp.field(entry, "category", where)
        name = strip_tag(key)
        tag = imp.concept(name, category, [imp.locate(i, *bases, path.parent) for i in images],
                          info=str(entry.get("info", "")))
        categories[tag] = category
    return categories


def find_database(src: Path) -> Path | None:
    for candidate in (src / "database.json", src / "example_database" / "database.json"):
        if candidate.is_file():
            return candidate
    found = sorted(src.glob("*/database.json"))
    return found[0] if found else None


def recognition(imp: Importer, path: Path, categories: dict[str, str]) -> None:
    """``[{image, question, concept, type, correct_answer}]`` -> recognition rows; the ``negative`` records
    that answer true repeat a positive and are left out (counted in the notes)."""
    raw = imp.read_json(path, list, "a list of {image, question, concept, type, correct_answer}")
    rel, repeated = imp.rel(path), 0
    for number, record in enumerate(raw):
        where = f"{rel}[{number}]"
        image = imp.field(record, "image", where)
        concept = imp.field(record, "concept", where)
        truth = imp.field(record, "correct_answer", where, bool)
        kind = imp.field(record, "type", where)
        if kind == "negative" and truth:
            repeated += 1
            continue
        tag = imp.tag(concept)
        if tag not in imp.concepts:
            imp.concept(strip_tag(concept), yollava.CATEGORIES.get(strip_tag(concept), "object"), [])
        shown = Path(image).parent.name
        question = imp.field(record, "question", where).replace("<image>", "").strip()
        question = question.replace(f"<{strip_tag(concept)}>", tag)
        negative = None
        if not truth:
            shown_tag = imp.tag(shown)
            if tag in categories and shown_tag in categories:
                negative = "same_category" if categories[tag] == categories[shown_tag] else "other_category"
            else:
                negative = yollava.negative_kind(strip_tag(concept), shown, yollava.CATEGORIES)
        imp.row(kind="recognition", question=question, answer="yes" if truth else "no", concepts=[tag],
                negative=negative, image=imp.locate(image, imp.src), source=where)
    if repeated:
        imp.notes.append(f"{rel}: {repeated} 'negative' records answer true (the image's own concept, repeating a "
                         "positive); left out so each pair is asked once")


def captions(imp: Importer, path: Path) -> None:
    """``{image: [concepts]}`` (the evaluation file RAP's caption.py reads) -> caption rows with no reference captions."""
    raw = imp.read_json(path, dict, "{image path: [concept, ...]}")
    rel = imp.rel(path)
    for image, names in raw.items():
        where = f"{rel}: {image}"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RepicError(f"{where}: expected a list of the concepts in the image")
        tags = [imp.tag(n) for n in names]
        for name, tag in zip(names, tags, strict=True):
            if tag not in imp.concepts:
                imp.concept(strip_tag(name), "object", [])
        imp.row(kind="caption", question=CAPTION_QUESTION, answer=[], concepts=tags,
                image=imp.locate(image, imp.src, path.parent), source=where)


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    imp = Importer("rap", src, out)
    database, evals = find_database(src), src / "eval"
    files = [evals / name for name in (RECOGNITION, yollava.VISUAL_QA, yollava.TEXT_QA)]
    caption_files = sorted(evals.glob("*caption*.json")) if evals.is_dir() else []
    if database is None and not any(f.is_file() for f in files) and not caption_files:
        raise RepicError(f"{src} is not a RAP-MLLM source: expected example_database/database.json or "
                         f"eval/{RECOGNITION}, eval/{yollava.VISUAL_QA}, eval/{yollava.TEXT_QA}")
    categories = read_database(imp, database, src) if database is not None else {}
    if files[0].is_file():
        recognition(imp, files[0], categories)
    if files[1].is_file():
        yollava.visual_qa(imp, files[1], src, evals)
    if files[2].is_file():
        yollava.text_qa(imp, files[2])
    for path in caption_files:
        captions(imp, path)
    return imp.finish()
