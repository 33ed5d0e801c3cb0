"""Yo'LLaVA (``WisconsinAIVision/YoLLaVA``): ``yollava-data/{train,test}/<concept>/<n>.png``, the visual QA
``yollava-data/yollava-visual-qa.json`` and, when present, the text-only QA ``yollava-text-only-qa.json``
(shipped in RAP-MLLM's ``eval/``). See ``docs/bench/yollava.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import RepicError
from ..rows import Manifest
from ._common import Importer, folders_in, images_in

# Deepayan137/Lewis_Game@621d687:src/inference_utils/common.py, YOLLAVA_CATEGORY_MAP
CATEGORIES = {
    **dict.fromkeys(("ciin", "denisdang", "khanhvy", "oong", "phuc-map", "thao", "thuytien", "viruss", "yuheng",
                     "willinvietnam"), "person"),
    **dict.fromkeys(("chua-thien-mu", "nha-tho-hanoi", "nha-tho-hcm", "thap-but", "thap-cham"), "building"),
    **dict.fromkeys(("dug", "fire", "marie-cat", "toodles-galore", "water"), "cartoon character"),
    **dict.fromkeys(("bo", "butin", "henry", "mam", "mydieu"), "pet animal"),
    **dict.fromkeys(("shiba-yellow", "neurips-cup", "brown-duck", "lamb", "duck-banana", "shiba-black", "shiba-sleep",
                     "yellow-duck", "elephant", "shiba-gray", "dragon"), "toy"),
    "pusheen-cup": "mug", "tokyo-keyboard": "electronic", "cat-cup": "cup", "pig-cup": "cup",
}
RECOGNITION_QUESTION = "Is {tag} in this photo? Answer with a single word or phrase."  # test-sks-acc.py
VISUAL_QA, TEXT_QA = "yollava-visual-qa.json", "yollava-text-only-qa.json"
_PLACEHOLDER = re.compile(r"<sks>|\bsks\b")


def negative_kind(asked: str, shown: str, categories: dict[str, str]) -> str | None:
    if asked not in categories or shown not in categories:
        return None
    return "same_category" if categories[asked] == categories[shown] else "other_category"


def visual_qa(imp: Importer, path: Path, *bases: Path) -> None:
    """``{concept: {image: {question, options: {A, B}, correct_answer}}}`` -> choice rows on the image."""
    raw = imp.read_json(path, dict, "{concept: {image: {question, options, correct_answer}}}")
    rel = imp.rel(path)
    for concept, items in raw.items():
        if not isinstance(items, dict):
            raise RepicError(f"{path}: {concept!r} should map image paths to questions (the top level is keyed "
                             "by concept)")
        tag = imp.tag(concept)
        if tag not in imp.concepts:
            imp.concept(concept, CATEGORIES.get(concept, "object"), [])
        for image, item in items.items():
            where = f"{rel}: {concept} / {image}"
            question = imp.field(item, "question", where)
            options = imp.field(item, "options", where, dict)
            answer = imp.field(item, "correct_answer", where)
            letters = sorted(options)
            if answer not in letters:
                raise RepicError(f"{where}: correct_answer {answer!r} is not one of the options {letters}")
            if concept == "brown-duck" and {str(v).lower() for v in options.values()} == {"duck", "crocodile"}:
                imp.notes.append(
                    f"{where}: {question!r} is labelled {answer} ({options[answer]}); Yo'LLaVA's original file says "
                    "B (Crocodile), RAP's copy says A (Duck), which is right. Imported as this file says")
            imp.choice(question=_PLACEHOLDER.sub(tag, question), options=[str(options[k]) for k in letters],
                       answer=letters.index(answer), image=imp.locate(image, *bases), concepts=[tag], source=where)


def text_qa(imp: Importer, path: Path) -> None:
    """``{concept: {"0": {question, option: {A, B}, correct_answer}}}`` -> text-only choice rows."""
    raw = imp.read_json(path, dict, "{concept: {id: {question, option, correct_answer}}}")
    rel = imp.rel(path)
    for concept, items in raw.items():
        if not isinstance(items, dict):
            raise RepicError(f"{path}: {concept!r} should map question ids to questions")
        tag = imp.tag(concept)
        if tag not in imp.concepts:
            imp.concept(concept, CATEGORIES.get(concept, "object"), [])
        for key, item in items.items():
            where = f"{rel}: {concept} / {key}"
            question = imp.field(item, "question", where)
            options = imp.field(item, "option" if "option" in item else "options", where, dict)
            answer = imp.field(item, "correct_answer", where)
            letters = sorted(options)
            if answer not in letters:
                raise RepicError(f"{where}: correct_answer {answer!r} is not one of the options {letters}")
            imp.choice(question=_PLACEHOLDER.sub(tag, question), options=[str(options[k]) for k in letters],
                       answer=letters.index(answer), concepts=[tag], source=where)


def data_root(src: Path) -> Path:
    for candidate in (src / "yollava-data", src):
        if (candidate / "test").is_dir():
            return candidate
    raise RepicError(f"{src} is not a Yo'LLaVA source: expected the test folders yollava-data/test/<concept>/ "
                     "(give the repository root or its yollava-data folder)")


def import_benchmark(src: Path, out: Path) -> Manifest:
    imp = Importer("yollava", src, out)
    data = data_root(Path(src))
    test = data / "test"
    names = [folder.name for folder in folders_in(test)]
    for name in names:
        imp.concept(name, CATEGORIES.get(name, "object"), images_in(data / "train" / name))
    # test-sks-acc.py: every learned concept against every test folder; its own folder answers yes
    for asked in names:
        tag = imp.tag(asked)
        for shown in names:
            for image in images_in(test / shown):
                yes = asked == shown
                imp.row(kind="recognition", question=RECOGNITION_QUESTION.format(tag=tag),
                        answer="yes" if yes else "no", concepts=[tag], image=image,
                        negative=None if yes else negative_kind(asked, shown, CATEGORIES),
                        source=f"test/{shown}/{image.name}")
    if (data / VISUAL_QA).is_file():
        visual_qa(imp, data / VISUAL_QA, data.parent, data)
    for candidate in (data / TEXT_QA, data.parent / TEXT_QA, data.parent / "eval" / TEXT_QA):
        if candidate.is_file():
            text_qa(imp, candidate)
            break
    return imp.finish()
