"""MC-LLaVA (``arctanxarc/MC-LLaVA``), two- and three-concept scenarios, with the file roles its code
(``llava/dataset.py``, ``eval/eval.py``) gives them, not its README: ``vqa.json`` is open visual QA on the
image, ``qa.json`` text-only multiple choice, ``choice.json`` and ``vqa_position.json`` visual multiple choice,
``position.json`` the characters in each multi-character image. ``concept_type.json`` says which case folder
holds each character. See ``docs/bench/mc-llava.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import RepicError
from ..rows import Manifest
from ._common import Importer, folders_in, images_in, letter_index, options_in_text

CASES = ("two_concept", "three_concept")
RECOGNITION_QUESTION = "Can you see {tag} in this photo? Answer the question using a single word Yes or No."
CAPTION_QUESTION = "Give a caption of the image."


class _Reader:
    def __init__(self, imp: Importer, tags: dict[str, str]):
        self.imp, self.tags, self.unparsed = imp, tags, 0

    def text(self, text: str) -> str:
        for name, tag in self.tags.items():
            if tag != f"<{name}>":
                text = text.replace(f"<{name}>", tag)
        return text

    def choice(self, question: str, answer: Any, where: str, concepts: list[str], image: Path | None, kind: str) -> None:
        stem, options = options_in_text(self.text(question))
        index = letter_index(str(answer), len(options))
        extra = {"type": kind}
        if len(options) >= 2 and index is not None:
            self.imp.row(kind="choice", question=stem, options=options, answer=index, concepts=concepts,
                         image=image, source=where, extra=extra)
        else:
            self.unparsed += 1
            self.imp.row(kind="open", question=self.text(question), answer=str(answer), concepts=concepts,
                         image=image, source=where, extra=extra)

    def qa_file(self, path: Path, concepts: list[str], kind: str, role: str) -> None:
        """``choice.json`` / ``vqa.json`` / ``vqa_position.json``: {image: {Human, AI}} or {image: [{Human, AI}]}."""
        if not path.is_file():
            return
        raw = self.imp.read_json(path, dict, "{image path: {Human, AI}} or {image path: [{Human, AI}, ...]}")
        for image, turns in raw.items():
            where = f"{self.imp.rel(path)}: {image}"
            located = self.imp.locate(image, self.imp.src, path.parent)
            for number, turn in enumerate(turns if isinstance(turns, list) else [turns]):
                question = self.imp.field(turn, "Human", where)
                answer = self.imp.field(turn, "AI", where)
                qa_kind = kind if kind == "si_sq" or number < 2 or role == "position" else "mi_mq"
                if role == "open":
                    self.imp.row(kind="open", question=self.text(question), answer=answer, concepts=concepts,
                                 image=located, source=f"{where} [{number}]", extra={"type": qa_kind})
                else:
                    self.choice(question, answer, f"{where} [{number}]", concepts, located, qa_kind)

    def text_qa(self, path: Path, concepts: list[str], kind: str) -> None:
        """``qa.json``: a list of {question, answer}, asked with no image (the code's role, not the README's)."""
        if not path.is_file():
            return
        raw = self.imp.read_json(path, list, "a list of {question, answer}")
        for number, item in enumerate(raw):
            where = f"{self.imp.rel(path)}[{number}]"
            self.choice(self.imp.field(item, "question", where), self.imp.field(item, "answer", where), where,
                        concepts, None, kind)


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    imp = Importer("mc-llava", src, out)
    types = imp.read_json(imp.require(src / "concept_type.json", "concept_type.json ({character: case folder})"),
                          dict, "{character: 'two_concept' | 'three_concept'}")
    tags: dict[str, str] = {}
    for name, case in types.items():
        if case not in CASES:
            imp.notes.append(f"concept_type.json: {name} is in {case!r}, not a two- or three-concept case; left out")
            continue
        references = [p for p in images_in(src / case / "concept" / "train" / name) if not p.stem.endswith("_mask")]
        tags[name] = imp.concept(name, "character", references)
    reader = _Reader(imp, tags)
    test_images = {name: images_in(src / types[name] / "concept" / "test" / name) for name in tags}
    for name, tag in tags.items():
        folder = src / types[name] / "concept" / "test" / name
        for image in test_images[name]:
            imp.row(kind="recognition", question=RECOGNITION_QUESTION.format(tag=tag), answer="yes", concepts=[tag],
                    image=image, source=imp.rel(image), extra={"type": "si_sq"})
            imp.row(kind="caption", question=CAPTION_QUESTION, answer=[], concepts=[tag], image=image,
                    source=imp.rel(image), extra={"type": "si"})
        reader.qa_file(folder / "choice.json", [tag], "si_sq", "choice")
        reader.qa_file(folder / "vqa.json", [tag], "si_sq", "open")
        reader.text_qa(folder / "qa.json", [tag], "s")
    for case in CASES:
        multi = src / case / "multi"
        for scenario in folders_in(multi) if multi.is_dir() else []:
            members = scenario.name.split("_")  # llava/dataset.py: friends = dir_name.split('_')
            if not all(m in tags for m in members):
                imp.notes.append(f"{imp.rel(scenario)}: names a character not in concept_type.json; left out")
                continue
            member_tags = [tags[m] for m in members]
            for asked in members:  # negatives: each character asked about the others' single test images
                for other in members:
                    for image in test_images[other] if other != asked else []:
                        imp.row(kind="recognition", question=RECOGNITION_QUESTION.format(tag=tags[asked]),
                                answer="no", concepts=[tags[asked]], image=image, source=imp.rel(image),
                                extra={"type": "si_sq"})
                for image in images_in(scenario):
                    imp.row(kind="recognition", question=RECOGNITION_QUESTION.format(tag=tags[asked]),
                            answer="yes", concepts=[tags[asked]], image=image, source=imp.rel(image),
                            extra={"type": "mi_sq"})
            reader.qa_file(scenario / "choice.json", member_tags, "mi_sq", "choice")
            reader.qa_file(scenario / "vqa.json", member_tags, "mi_sq", "open")
            reader.qa_file(scenario / "vqa_position.json", member_tags, "mi_sq", "position")
            reader.text_qa(scenario / "qa.json", member_tags, "m")
            if (scenario / "position.json").is_file():
                positions = imp.read_json(scenario / "position.json", dict, "{image: {character: position | null}}")
                for image, where_is in positions.items():
                    source = f"{imp.rel(scenario / 'position.json')}: {image}"
                    if not isinstance(where_is, dict):
                        raise RepicError(f"{source}: expected {{character: position or null}}")
                    present = [tags[c] for c, p in where_is.items() if p is not None and c in tags]
                    imp.row(kind="caption", question=CAPTION_QUESTION, answer=[], concepts=present,
                            image=imp.locate(image, src, scenario), source=source, extra={"type": "mi"})
    if not tags:
        raise RepicError(f"{src / 'concept_type.json'} names no character of a two- or three-concept case")
    if reader.unparsed:
        imp.notes.append(f"{reader.unparsed} multiple-choice question(s) list no 'A. ...' options in their text; "
                         "imported as open questions whose answer is the letter")
    imp.notes.append("multi-character recognition asked of all characters at once (mi_mq) is not imported: a "
                     "recognition row asks about one concept")
    return imp.finish()
