"""The DreamBooth dataset (``google/dreambooth``): ``dataset/<subject>/<NN>.jpg`` and the subject classes in
``dataset/prompts_and_classes.txt``. The first image of each subject is its reference; the others are asked
about (captioning, and recognition of every subject, as follow-up work does). See ``docs/bench/dreambooth.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import RepicError
from ..rows import Manifest
from ._common import Importer, folders_in, images_in

CLASSES = "prompts_and_classes.txt"
CAPTION_QUESTION = "Give a caption of the image."
RECOGNITION_QUESTION = "Is {tag} in this image? Answer with a single word or phrase."
_ROW = re.compile(r"^([\w.-]+)\s*,\s*(.+?)\s*$")


def read_classes(text: str, where: str) -> dict[str, str]:
    """The ``subject_name,class`` block after the ``Classes`` header."""
    classes: dict[str, str] = {}
    started = False
    for line in text.splitlines():
        line = line.strip()
        if line.replace(" ", "") == "subject_name,class":
            started = True
            continue
        if started:
            match = _ROW.match(line)
            if match is None:
                if classes:
                    break
                continue
            classes[match.group(1)] = match.group(2)
    if not classes:
        raise RepicError(f"{where}: expected a 'subject_name,class' block listing each subject's class")
    return classes


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    imp = Importer("dreambooth", src, out)
    data = src / "dataset" if (src / "dataset" / CLASSES).is_file() else src
    classes = read_classes(imp.read_text(imp.require(data / CLASSES, f"the subject classes dataset/{CLASSES}")),
                           imp.rel(data / CLASSES))
    subjects = {f.name: images_in(f) for f in folders_in(data) if f.name in classes}
    for name in classes:
        if name not in subjects:
            imp.notes.append(f"subject {name} is in {CLASSES} but has no folder; left out")
    tags = {name: imp.concept(name, classes[name], images[:1]) for name, images in subjects.items()}
    for shown, images in subjects.items():
        for image in images[1:]:
            source = f"{shown}/{image.name}"
            imp.row(kind="caption", question=CAPTION_QUESTION, answer=[], concepts=[tags[shown]], image=image,
                    source=source)
            for asked, tag in tags.items():
                yes = asked == shown
                negative = None if yes else "same_category" if classes[asked] == classes[shown] else "other_category"
                imp.row(kind="recognition", question=RECOGNITION_QUESTION.format(tag=tag), answer="yes" if yes else "no",
                        concepts=[tag], negative=negative, image=image, source=source)
    imp.notes.append("each subject's first image is its reference and is not asked about")
    return imp.finish()
