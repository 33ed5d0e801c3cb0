"""PerVA (R2P; loaded as in ``Deepayan137/Lewis_Game``): ``{train,test}/<category>/<concept>/<img>`` (the
scripts' default folder names ``train_`` / ``test_`` are read too). The category comes from the path, as the
note on Lewis_Game's fallback advises. Binary recognition pairs every test image with every concept.
See ``docs/bench/perva.md``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ...errors import RepicError
from ..rows import Manifest
from ._common import Importer, folders_in, images_in

# Deepayan137/Lewis_Game@621d687:src/inference_utils/common.py, PERVA_CATEGORY_MAP (the rest keep their name)
CATEGORY_NAMES = {"veg": "vegetable", "decoration": "decoration object", "retail": "retail object",
                  "tro_bag": "trolley bag"}
RECOGNITION_QUESTION = "Is {tag} in this image? Answer in yes or no."  # Lewis_Game recognition.py


def split_folder(src: Path, split: str) -> Path | None:
    for name in (split, f"{split}_"):
        if (src / name).is_dir():
            return src / name
    return None


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    imp = Importer("perva", src, out)
    train, test = split_folder(src, "train"), split_folder(src, "test")
    if test is None:
        raise RepicError(f"{src} is not a PerVA source: expected test/<category>/<concept>/<image> (or test_/)")
    pairs = []  # (category, concept) in test or train
    for split in (test, train):
        if split is not None:
            for category in folders_in(split):
                pairs.extend((category.name, c.name) for c in folders_in(category) if (category.name, c.name) not in pairs)
    clashes = {c for c, n in Counter(concept for _, concept in pairs).items() if n > 1}
    tags: dict[tuple[str, str], str] = {}
    for category, concept in pairs:
        name = f"{category}-{concept}" if concept in clashes else concept
        if concept in clashes:
            imp.notes.append(f"concept {concept} is in more than one category; {category}/{concept} imported as <{name}>")
        references = images_in(train / category / concept) if train is not None else []
        tags[(category, concept)] = imp.concept(name, CATEGORY_NAMES.get(category, category), references)
    for (category, concept), shown_tag in tags.items():
        for image in images_in(test / category / concept):
            for (asked_category, _), tag in tags.items():
                yes = tag == shown_tag
                negative = None if yes else "same_category" if asked_category == category else "other_category"
                imp.row(kind="recognition", question=RECOGNITION_QUESTION.format(tag=tag), answer="yes" if yes else "no",
                        concepts=[tag], negative=negative, image=image, source=imp.rel(image))
    imp.notes.append("PerVA ships no annotation file: the folder names are the labels (no hashes)")
    return imp.finish()
