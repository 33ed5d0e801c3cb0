"""Reading prediction files into the typed rows ``repic.evaluate.metrics`` scores.

Two formats are read, told apart by content, not by file name:

1. **Official RePIC / RAP caption dumps**: one JSON list of rows ``[image_path, ["<a>", ...], caption,
   question]``, the format the official captioning scripts write (the question may be missing).
2. **This project's predictions, JSONL**: one JSON object per line (a JSON list of such objects reads the
   same way; blank lines are ignored)::

       {"image": "photos/park.jpg", "task": "ict_multi", "concepts": ["<bo>", "<kim>"],
        "prediction": "<bo> runs after <kim> ...", "question": "Give a caption of the image.",
        "solution": ["<bo>", "<kim>"], ...}

   ``task`` is ``ict``, ``ict_multi``, ``oct`` or ``vlt`` (or the official names); ``concepts`` the tags
   truly in the image, or the tag asked about; ``solution`` is required for ``oct`` (``"yes"`` or ``"no"``)
   and ``vlt`` (the true box in pixels). Any further fields are left alone.

A caption row whose ``concepts`` is empty carries no truth: it is read into
``LoadedPredictions.unlabeled``, not scored. Malformed rows never stop a file half-way: with
``on_error="skip"`` (the default) they are left out and listed in ``LoadedPredictions.skipped`` with their
row number and what is wrong; with ``on_error="fail"`` the first one raises ``RepicError``. Problems with
the file itself (missing, not UTF-8, a JSON list that does not parse, empty) always raise.

In full: docs/notes/prediction-files.md
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RepicError
from ..records import concept_tag, strip_tag
from ..tasks import normalize_task
from .metrics import CaptionRow, LocalizationRow, RecognitionRow

ON_ERROR_CHOICES: tuple[str, ...] = ("skip", "fail")

_CAPTION_TASKS = ("ict", "ict_multi")
_PREVIEW_CHARS = 60
# Examples in messages start with a quote, not a letter, so a terminal that renders rich markup keeps them.
_ROW_EXAMPLE = '["image.jpg", ["<bo>", "<kim>"], "caption", "question"]'


@dataclass(frozen=True)
class SkippedRow:
    """A malformed row left out of scoring: its 1-based row (or line) number and what is wrong with it."""

    row: int
    reason: str


@dataclass
class LoadedPredictions:
    """The scorable rows of one prediction file, by task, the caption rows without truth (``unlabeled``),
    and the malformed rows that were skipped.

    ``format`` is ``"json"`` (one JSON list) or ``"jsonl"`` (one JSON document per line).
    """

    path: Path
    format: str
    captions: list[CaptionRow] = field(default_factory=list)
    unlabeled: list[CaptionRow] = field(default_factory=list)  # caption rows without true concepts: not scored
    recognition: list[RecognitionRow] = field(default_factory=list)
    localization: list[LocalizationRow] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)

    def skipped_message(self, shown: int = 3) -> str:
        """One line for the user about the skipped rows (``""`` when none were), naming the first few."""
        if not self.skipped:
            return ""
        count = len(self.skipped)
        numbers = ", ".join(str(s.row) for s in self.skipped[:shown]) + (", ..." if count > shown else "")
        first = self.skipped[0]
        return (
            f"skipped {count} malformed row{'s' if count > 1 else ''} of {self.path} (row {numbers}); "
            f"row {first.row}: {first.reason}"
        )


class _MalformedRow(Exception):
    """One row cannot be read; the message says why. Never leaves this module."""


def load_predictions(path: str | os.PathLike, *, on_error: str = "skip") -> LoadedPredictions:
    """Read a caption dump (JSON list) or a predictions JSONL file; see the module docs for both formats."""
    if on_error not in ON_ERROR_CHOICES:
        raise RepicError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, not {on_error!r}")
    path = Path(path)
    text = _read_text(path)
    fmt, items = _items(path, text)
    loaded = LoadedPredictions(path=path, format=fmt)
    for number, item in items:
        try:
            _add_row(loaded, item)
        except _MalformedRow as exc:
            if on_error == "fail":
                raise RepicError(
                    f"{path}, row {number}: {exc}; fix that row, or skip malformed rows "
                    "(--on-error skip, on_error='skip')"
                ) from None
            loaded.skipped.append(SkippedRow(number, str(exc)))
    return loaded


def _read_text(path: Path) -> str:
    hint = f"pass a caption dump (a JSON list of rows like {_ROW_EXAMPLE}) or a predictions JSONL"
    if not path.exists():
        raise RepicError(f"predictions file {path} does not exist; {hint}")
    if path.is_dir():
        raise RepicError(f"{path} is a folder, not a predictions file; {hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RepicError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON or JSONL"
        ) from None
    except OSError as exc:
        raise RepicError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None
    if not text.strip():
        raise RepicError(f"{path} is empty; {hint}")
    return text


def _items(path: Path, text: str) -> tuple[str, Iterator[tuple[int, Any]]]:
    """The format and the numbered raw rows of a file: the items of one JSON list, else one per line."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        first_line = text.lstrip().split("\n", 1)[0]
        if text.lstrip().startswith("[") and not _is_json(first_line):
            # A JSON list spread over lines: one broken row breaks the whole document, so say where.
            raise RepicError(
                f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; fix the "
                "file there, or write one JSON row per line (JSONL) so a broken row can be skipped"
            ) from None
        return "jsonl", _jsonl_items(text)
    if isinstance(document, list):
        return "json", enumerate(document, start=1)
    if isinstance(document, dict):  # a JSONL file of a single line
        return "jsonl", iter([(1, document)])
    raise RepicError(
        f"{path} holds a single JSON {type(document).__name__}; expected a JSON list of rows or one JSON "
        "object per line"
    )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


class _BadJsonLine:
    """Stands for a line that is not JSON, so the row loop reports it like any malformed row."""

    def __init__(self, error: json.JSONDecodeError):
        self.error = error


def _jsonl_items(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, _BadJsonLine(exc)


def _add_row(loaded: LoadedPredictions, item: Any) -> None:
    if isinstance(item, _BadJsonLine):
        raise _MalformedRow(f"not valid JSON ({item.error.msg} at column {item.error.colno})")
    if isinstance(item, list):
        _add_caption(loaded, _official_row(item))
    elif isinstance(item, dict):
        _add_project_row(loaded, item)
    else:
        raise _MalformedRow(f"expected a row like {_ROW_EXAMPLE} or a JSON object, found {_preview(item)}")


def _official_row(row: list[Any]) -> CaptionRow:
    if len(row) < 3:
        raise _MalformedRow(f"expected a row like {_ROW_EXAMPLE} (at least 3 items), found {_preview(row)}")
    question = row[3] if len(row) > 3 and isinstance(row[3], str) else ""
    return CaptionRow(
        image=str(row[0]),
        concepts=_concepts(row[1]),
        caption=_text(row[2], "caption"),
        question=question,
    )


def _add_project_row(loaded: LoadedPredictions, row: dict[str, Any]) -> None:
    if "task" not in row:
        raise _MalformedRow("has no 'task'; add one of ict, ict_multi, oct, vlt")
    try:
        task = normalize_task(row["task"])
    except RepicError as exc:
        raise _MalformedRow(str(exc)) from None
    image = _text(row.get("image", ""), "image")
    prediction = _text(row.get("prediction"), "prediction")
    concepts = _concepts(row.get("concepts"))
    if task in _CAPTION_TASKS:
        question = _text(row.get("question", ""), "question")
        _add_caption(loaded, CaptionRow(image, concepts, prediction, question, **_prompt_fields(row)))
    elif task == "oct":
        loaded.recognition.append(RecognitionRow(image, concepts, prediction, _yes_no(row.get("solution"))))
    else:
        loaded.localization.append(LocalizationRow(image, concepts, prediction, _box(row.get("solution"))))


def _prompt_fields(row: dict[str, Any]) -> dict[str, Any]:
    """What a project row says of its prompt: the concepts shown, those retrieved, the query's and the
    references' paths (absent in rows written by other tools: left empty)."""
    retrieved = row.get("retrieved") or []
    references = row.get("references") or []
    if not isinstance(retrieved, list) or not all(isinstance(found, dict) and isinstance(found.get("tag"), str)
                                                  for found in retrieved):
        raise _MalformedRow("has 'retrieved' that is not a list of {\"tag\": ...} objects")
    if not isinstance(references, list) or not all(isinstance(ref, dict) and isinstance(ref.get("tag"), str)
                                                   and isinstance(ref.get("image"), str) for ref in references):
        raise _MalformedRow("has 'references' that is not a list of {\"tag\": ..., \"image\": ...} objects")
    return {
        "shown": _concepts(row["prompt_concepts"]) if row.get("prompt_concepts") else (),
        "retrieved": tuple(found["tag"] for found in retrieved),
        "image_path": _text(row.get("image_path", ""), "image_path"),
        "references": tuple((ref["tag"], ref["image"]) for ref in references),
    }


def _add_caption(loaded: LoadedPredictions, row: CaptionRow) -> None:
    """A caption row among the scored ones, or among the unlabeled ones when it names no true concept."""
    (loaded.captions if row.concepts else loaded.unlabeled).append(row)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _MalformedRow(f"{name} must be a string, found {_preview(value)}")
    return value


def _concepts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise _MalformedRow(
            f'concepts must be a list of tags like ["<bo>", "<kim>"], found {_preview(value)}'
        )
    for tag in value:
        if not strip_tag(tag.strip()).strip():
            raise _MalformedRow(f"concepts has an empty tag {tag!r}; name each concept, e.g. '<bo>'")
    keys = [concept_tag(tag.strip()).lower() for tag in value]
    twice = sorted({tag for tag, key in zip(value, keys, strict=True) if keys.count(key) > 1})
    if twice:  # counted twice it would weigh double in recall; once, the row says something else than meant
        raise _MalformedRow(f"concepts lists {', '.join(twice)} more than once; list each concept once")
    return tuple(value)


def _yes_no(value: Any) -> str:
    label = value.strip().lower() if isinstance(value, str) else None
    if label not in ("yes", "no"):
        raise _MalformedRow(f'an oct row\'s solution must be "yes" or "no", found {_preview(value)}')
    return label


def _box(value: Any) -> tuple[float, float, float, float]:
    numbers = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not numbers or len(value) != 4 or not (value[0] < value[2] and value[1] < value[3]):
        raise _MalformedRow(
            "a vlt row's solution must be a box like [10, 20, 200, 180] (x1, y1, x2, y2 with x1 < x2 and "
            f"y1 < y2), found {_preview(value)}"
        )
    x1, y1, x2, y2 = (float(v) for v in value)
    return (x1, y1, x2, y2)


def _preview(value: Any) -> str:
    """A short JSON rendering of a (parsed JSON) value for messages."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."
