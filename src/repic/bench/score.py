"""Score a benchmark run: one set of rules for every source, each stated here and counted in the results.

``score_benchmark(predictions, bench_dir)`` reads ``predictions.jsonl`` (``repic.bench.run``) against the
rows of the benchmark folder and returns every number and count as a dict; ``write_results`` writes it as
``bench_results.json`` beside the predictions. Rates are fractions in [0, 1] next to the counts they come
from; ``None`` where nothing was there to count. The rules, and where the sources' own scripts differ:

- **Every predicted row is scored; wrong is wrong.** A row that could not be asked (``"skipped"`` in its
  line), an abstention and an answer that cannot be read all count as wrong, and each is counted. Rows of
  the folder without a prediction line (a run cut short or ``--limit``) are left out of the rates and
  counted as ``unanswered``.
- **Abstention** (per kind): an empty answer, or one that opens with "I don't know", "not sure",
  "cannot determine", "hard to tell", "no idea" and the like before giving any answer (``abstains``).
  Counted, reported, and wrong.
- **recognition**: the first whole-word "yes" or "no" (``first_yes_no(word_boundary=True)``; the
  official substring search reads "know" as "no"). An answer with neither is *unclear*: wrong and counted
  (Yo'LLaVA's ``test-sks-acc.py`` drops such answers, which raises its accuracy). Reported: positive
  accuracy, negative accuracy, balanced accuracy (their mean), overall accuracy, and negatives split into
  same-category, other-category and unknown (rows whose source does not say).
- **caption**: concept names scored by ``repic.evaluate.metrics`` in the official mode (the RePIC script
  for the largest number of concepts in a row) and the strict mode, P / R / F1 over the rows that have
  concepts; an abstaining or skipped caption scores as one that names nobody. *Absent names*: the share of
  captions naming (strict whole-name match) a concept of the folder's ``database.json`` that is not in the
  image.
- **choice**: the letter read from the answer (``parse_choice``: the answer alone, a leading "B." or
  "(B)", "the answer is B", or the exact text of one option), mapped back through the row's recorded
  permutation to the source's option, against the right one. No letter: *unparseable*, wrong, counted.
  Printed next to it, the **answer-prior baseline**: the accuracy of always answering the most frequent
  right position in the source's order (Yo'LLaVA's text QA: 390 of 400 are "A", 97.5 %), and the same in
  the order shown (near 1 / options when permuted).
- **open**: normalised exact match (lower case, punctuation and the articles a / an / the removed, spaces
  collapsed). An empty normalised answer never matches (RAP's ``eval_qa.py`` normalises "A" to "", so an
  empty answer matched the truth "A"); a truth that normalises to nothing ("A") is compared with its
  articles kept.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..errors import RepicError
from ..evaluate.metrics import (
    CaptionRow,
    NameScores,
    choose_official_variant,
    named_concepts,
    official_scores,
    strict_scores,
)
from ..prompts import CHOICE_LETTERS
from ..rewards.output import first_yes_no
from .rows import KINDS, NEGATIVE_KINDS, BenchRow, read_manifest, read_rows
from .run import DATABASE, PREDICTIONS, RUN_JSON, read_predictions

RESULTS_JSON = "bench_results.json"
RESULTS_FORMAT = "repic-bench-results/1"

RULES = {
    "all": "Every predicted row is scored. Skipped rows, abstentions and unreadable answers count as wrong and "
           "are counted; rows without a prediction are left out and counted as unanswered.",
    "abstention": "An empty answer, or one that opens with 'I don't know', 'not sure', 'cannot determine', "
                  "'hard to tell', 'no idea' and the like before any answer.",
    "recognition": "The first whole-word yes or no; none is unclear and wrong (abstentions are among the "
                   "unclear). Balanced accuracy is the mean of positive and negative accuracy.",
    "caption": "Concept names in the official RePIC mode and the strict mode (repic.evaluate.metrics); absent "
               "names: captions naming a database concept that is not in the image.",
    "choice": "The answer's letter mapped back through the row's permutation; no letter is unparseable and "
              "wrong (abstentions are among the unparseable). The answer-prior baseline always answers the most "
              "frequent right position, in the source's order and in the order shown.",
    "open": "Normalised exact match (lower case, no punctuation, no a/an/the, spaces collapsed); an empty "
            "answer never matches; a truth that normalises to nothing is compared with its articles kept.",
}

_NEGATION = r"(?:can\s*not|can'?t|cannot|could\s*n'?t|could\s+not|unable\s+to|impossible\s+to|not\s+possible\s+to" \
            r"|hard\s+to|difficult\s+to|do\s+not|don'?t|does\s+not|doesn'?t)"
_VERB = r"(?:know|tell|say|determine|answer|identify|be\s+(?:sure|determined|answered|identified|told))"
_ABSTAIN = re.compile(
    rf"\b(?:{_NEGATION}\s+{_VERB}|not\s+sure|no\s+idea|unsure|uncertain|unanswerable"
    r"|not\s+enough\s+information|insufficient\s+information)\b",
    re.IGNORECASE,
)
_ANSWER_ALONE = re.compile(r"^[(\[]?([A-Za-z])[)\]]?[.:,]?$")
_ANSWER_LEADING = re.compile(r"^[(\[]?([A-Z])(?:[)\]]|[.:,](?=\s|$))")
_ANSWER_SAID = re.compile(r"\b(?i:answer|option|choice)(?:\s+(?i:is))?\s*[:\-]?\s*[(\[]?([A-Z])\b")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


# ------------------------------------------------------------------------------------------ readers
def abstains(text: str, answered: Callable[[str], bool] = lambda prefix: False) -> bool:
    """Whether ``text`` abstains: it is empty, or an abstention phrase comes before any answer.

    ``answered(prefix)`` says whether the text before the phrase already answers (for recognition, a
    yes or no in it).

    >>> abstains(""), abstains("I don't know."), abstains("Hard to tell from this photo.")
    (True, True, True)
    >>> abstains("Yes, though I am not sure.", lambda prefix: first_yes_no(prefix, word_boundary=True) is not None)
    False
    >>> abstains("<bo> naps on the sofa.")
    False
    """
    text = text.replace("\u2019", "'")
    if not text.strip() or normalize_answer(text) == "unknown":
        return True
    found = _ABSTAIN.search(text)
    return found is not None and not answered(text[: found.start()])


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """The position (0 = A) of the option ``text`` picks among ``options`` as shown, or ``None``.

    Read in this order: the answer is a letter alone ("B", "(b)", "B."); it opens with a capital letter
    and a bracket or stop ("B. Crocodile", "(B) crocodile"); it says "answer / option / choice (is) B";
    its normalised text equals exactly one option's. A letter past the last option is not an answer.

    >>> [parse_choice(t, ["Duck", "Crocodile"]) for t in ["B", "(a)", "B. Crocodile", "The answer is A.", "duck"]]
    [1, 0, 1, 0, 0]
    >>> [parse_choice(t, ["Duck", "Crocodile"]) for t in ["A duck, I think", "C", "Neither", ""]]
    [None, None, None, None]
    """
    text = text.strip()
    letters = CHOICE_LETTERS[: len(options)]
    for pattern in (_ANSWER_ALONE, _ANSWER_LEADING, _ANSWER_SAID):
        found = pattern.search(text)
        if found is not None:
            letter = found.group(1).upper()
            return letters.index(letter) if letter in letters else None
    said = normalize_answer(text, articles=False)
    same = [i for i, option in enumerate(options) if said and normalize_answer(option, articles=False) == said]
    return same[0] if len(same) == 1 else None


def normalize_answer(text: str, *, articles: bool = True) -> str:
    """Lower case, punctuation removed, the articles a / an / the removed (``articles``), spaces collapsed.

    >>> normalize_answer("  The Red,   cup! "), normalize_answer("A"), normalize_answer("A", articles=False)
    ('red cup', '', 'a')
    """
    text = text.lower().translate(_PUNCTUATION)
    if articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def open_match(answer: str, truth: str) -> bool:
    """Normalised exact match; an empty normalised answer never matches (see the module).

    >>> open_match("The cat.", "cat"), open_match("", "A"), open_match("A.", "A"), open_match("the", "A")
    (True, False, True, False)
    """
    said, right = normalize_answer(answer), normalize_answer(truth)
    if not right:  # a truth made only of an article ("A"): compare with the articles kept
        said, right = normalize_answer(answer, articles=False), normalize_answer(truth, articles=False)
    return bool(said) and said == right


def recognition_answer(text: str) -> str | None:
    """The first whole-word ``"yes"`` / ``"no"`` of an answer, or ``None`` (unclear)."""
    return first_yes_no(text, word_boundary=True)


# ------------------------------------------------------------------------------------------ scoring
def score_benchmark(predictions_path: str | os.PathLike, bench_dir: str | os.PathLike) -> dict[str, Any]:
    """Every number and count of a run's predictions against its benchmark folder (see the module)."""
    predictions_path = Path(predictions_path)
    if predictions_path.is_dir():
        predictions_path = predictions_path / PREDICTIONS
    if not predictions_path.is_file():
        raise RepicError(f"{predictions_path} does not exist; answer the benchmark first with `repic bench run`")
    bench = Path(bench_dir)
    rows = read_rows(bench)
    manifest = read_manifest(bench)
    predictions, dropped = read_predictions(predictions_path)
    by_id = {row.id: row for row in rows}
    unknown = sorted(key for key in predictions if key not in by_id)
    scored: dict[str, list[tuple[BenchRow, dict[str, Any]]]] = {kind: [] for kind in KINDS}
    for row in rows:
        line = predictions.get(row.id)
        if line is None:
            continue
        if line["kind"] != row.kind:
            raise RepicError(f"{predictions_path}: row {row.id!r} is a {line['kind']} prediction but a {row.kind} "
                             f"row in {bench}; score the predictions against the benchmark they answer")
        scored[row.kind].append((row, line))
    folder_counts = Counter(row.kind for row in rows)
    results: dict[str, Any] = {
        "results": RESULTS_FORMAT,
        "predictions": str(predictions_path.resolve()),
        "bench_dir": str(bench.resolve()),
        "benchmark": {"format": manifest.get("format"), "source": manifest.get("source")},
        "model": _run_model(predictions_path.parent),
        "rows": {
            "in_folder": len(rows),
            "scored": sum(len(pairs) for pairs in scored.values()),
            "unanswered": len(rows) - sum(len(pairs) for pairs in scored.values()),
            "unknown_ids": len(unknown),
            "unreadable_lines": dropped,
        },
    }
    scorers = {"recognition": _recognition, "caption": lambda pairs: _caption(pairs, _pool(bench, rows)),
               "choice": _choice, "open": _open}
    for kind in KINDS:
        if folder_counts[kind]:
            section = scorers[kind](scored[kind]) if scored[kind] else {"rows": 0}
            section["unanswered"] = folder_counts[kind] - len(scored[kind])
            results[kind] = section
    results["abstention"] = {
        kind: {"count": results[kind].get("abstained", 0), "rate": results[kind].get("abstention_rate")}
        for kind in KINDS if kind in results
    }
    results["rules"] = RULES
    return results


def write_results(results: dict[str, Any], predictions_path: str | os.PathLike) -> Path:
    """Write ``results`` as ``bench_results.json`` beside the predictions (indented, for reading)."""
    folder = Path(predictions_path)
    folder = folder if folder.is_dir() else folder.parent
    return atomic_write_json(folder / RESULTS_JSON, results, indent=2)


def _recognition(pairs: list[tuple[BenchRow, dict[str, Any]]]) -> dict[str, Any]:
    groups: dict[str, list[bool]] = {"positive": [], "negative": []}
    negatives: dict[str, list[bool]] = {name: [] for name in (*NEGATIVE_KINDS, "unknown")}
    unclear = abstained = skipped = 0
    for row, line in pairs:
        text = line.get("answer")
        if text is None:
            skipped += 1
            said = None
        elif abstains(text, lambda prefix: recognition_answer(prefix) is not None):
            abstained += 1
            said = None
        else:
            said = recognition_answer(text)
        unclear += text is not None and said is None
        right = said == row.answer
        groups["positive" if row.answer == "yes" else "negative"].append(right)
        if row.answer == "no":
            negatives[row.negative or "unknown"].append(right)
    positive, negative = (sum(flags) / len(flags) if flags else None for flags in groups.values())
    every = groups["positive"] + groups["negative"]
    return {
        "rows": len(pairs),
        "correct": sum(every),
        "accuracy": _rate(every),
        "balanced_accuracy": _round((positive + negative) / 2) if positive is not None and negative is not None else None,
        "positive": _group(groups["positive"]),
        "negative": {**_group(groups["negative"]), **{name: _group(flags) for name, flags in negatives.items()}},
        "unclear": unclear,
        "abstained": abstained,
        "skipped": skipped,
        "abstention_rate": _round(abstained / len(pairs)),
    }


def _caption(pairs: list[tuple[BenchRow, dict[str, Any]]], pool: list[str]) -> dict[str, Any]:
    abstained = skipped = absent_captions = absent_names = 0
    named_rows: list[CaptionRow] = []
    for row, line in pairs:
        text = line.get("answer")
        if text is None:
            skipped += 1
            text = ""
        named = named_concepts(text, pool) if text else []
        if abstains(text, lambda prefix: False) and not named:
            abstained += 1
            text = ""
        truth = {_key(tag) for tag in row.concepts}
        absent = [tag for tag in named if _key(tag) not in truth]
        absent_captions += bool(absent)
        absent_names += len(absent)
        if row.concepts:
            named_rows.append(CaptionRow(row.id, tuple(row.concepts), text, row.question))
    section: dict[str, Any] = {"rows": len(pairs), "with_concepts": len(named_rows)}
    if named_rows:
        variant = choose_official_variant(named_rows)
        section["official"] = {"variant": variant, **_names(official_scores(named_rows, variant))}
        section["strict"] = _names(strict_scores(named_rows))
    else:
        section["official"] = section["strict"] = None
    section["absent_names"] = {"captions": absent_captions, "rate": _round(absent_captions / len(pairs)),
                               "names": absent_names, "pool": len(pool)}
    section.update(abstained=abstained, skipped=skipped, abstention_rate=_round(abstained / len(pairs)))
    return section


def _choice(pairs: list[tuple[BenchRow, dict[str, Any]]]) -> dict[str, Any]:
    right: list[bool] = []
    unparseable = abstained = skipped = 0
    shown_positions: list[int] = []
    for row, line in pairs:
        permutation = _permutation(row, line)
        shown = [row.options[i] for i in permutation]
        shown_positions.append(permutation.index(row.answer))
        text = line.get("answer")
        picked = None
        if text is None:
            skipped += 1
        elif abstains(text, lambda prefix, shown=shown: parse_choice(prefix, shown) is not None):
            abstained += 1
            unparseable += 1
        else:
            position = parse_choice(text, shown)
            if position is None:
                unparseable += 1
            else:
                picked = permutation[position]
        right.append(picked == row.answer)
    return {
        "rows": len(pairs),
        "correct": sum(right),
        "accuracy": _rate(right),
        "unparseable": unparseable,
        "abstained": abstained,
        "skipped": skipped,
        "abstention_rate": _round(abstained / len(pairs)),
        "answer_prior": {"source_order": _prior([row.answer for row, _ in pairs]),
                         "shown_order": _prior(shown_positions)},
    }


def _open(pairs: list[tuple[BenchRow, dict[str, Any]]]) -> dict[str, Any]:
    right: list[bool] = []
    abstained = skipped = empty = 0
    for row, line in pairs:
        text = line.get("answer")
        if text is None:
            skipped += 1
            right.append(False)
            continue
        hit = open_match(text, row.answer)
        if not hit and abstains(text):
            abstained += 1
        empty += not hit and not normalize_answer(text)  # normalised to nothing, so no match
        right.append(hit)
    return {
        "rows": len(pairs),
        "correct": sum(right),
        "accuracy": _rate(right),
        "empty_answers": empty,
        "abstained": abstained,
        "skipped": skipped,
        "abstention_rate": _round(abstained / len(pairs)),
    }


# ------------------------------------------------------------------------------------------ helpers
def _permutation(row: BenchRow, line: dict[str, Any]) -> list[int]:
    """The row's recorded permutation; the source's order when the line has none (predictions made elsewhere)."""
    permutation = line.get("permutation")
    if permutation is None:
        return list(range(len(row.options)))
    if not isinstance(permutation, list) or sorted(permutation) != list(range(len(row.options))):
        raise RepicError(f"prediction {row.id!r}: its permutation {permutation!r} is not an order of the row's "
                         f"{len(row.options)} options; answer the benchmark again")
    return permutation


def _prior(positions: list[int]) -> dict[str, Any]:
    """Always answering the most frequent right position: which (letter), and the accuracy it scores."""
    if not positions:
        return {"letter": None, "correct": 0, "accuracy": None}
    position, count = sorted(Counter(positions).items(), key=lambda item: (-item[1], item[0]))[0]
    return {"letter": CHOICE_LETTERS[position], "correct": count, "accuracy": _round(count / len(positions))}


def _names(scores: NameScores) -> dict[str, Any]:
    return {"precision": _round(scores.precision), "recall": _round(scores.recall), "f1": _round(scores.f1),
            "correct": scores.correct, "miss": scores.miss, "none": scores.none, "total": scores.total}


def _pool(bench: Path, rows: Sequence[BenchRow]) -> list[str]:
    """The concepts a caption could name: the folder's database, else every concept its rows name."""
    try:
        concepts = json.loads((bench / DATABASE).read_text(encoding="utf-8")).get("concept_dict", {})
        if isinstance(concepts, dict) and concepts:
            return list(concepts)
    except (OSError, ValueError, AttributeError):
        pass
    return sorted({tag for row in rows for tag in row.concepts})


def _key(tag: str) -> str:
    return tag.strip().strip("<>").lower()


def _run_model(folder: Path) -> str | None:
    try:
        record = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("model") if isinstance(record, dict) else None


def _group(flags: list[bool]) -> dict[str, Any]:
    return {"rows": len(flags), "correct": sum(flags), "accuracy": _rate(flags)}


def _rate(flags: Sequence[bool]) -> float | None:
    return _round(sum(flags) / len(flags)) if flags else None


def _round(value: float) -> float:
    return round(value, 6)
