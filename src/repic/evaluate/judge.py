"""Preference evaluation by an LLM judge: which of two caption files describes the same images better.

``judge_files(a, b, judge)`` pairs the rows of two caption files (the official rows ``[image, [concepts],
caption, question]`` or repic's JSONL, read by ``repic.evaluate.predictions``) by image and question, asks
a judge model behind any OpenAI-compatible endpoint (``ChatJudge``) which caption is more faithful and
names the right concepts, and sums the verdicts up (``summarize``). What it chose and why:

- **Position swapping.** Judges favour one position; every pair is asked twice, with A first and with B
  first. A pair is a *win* for A only when both orders prefer A, a *loss* when both prefer B, and a *tie*
  otherwise (the judge said tie, or changed its mind with the order). The share of pairs whose two
  verdicts agree is reported as the judge's consistency.
- **Score and interval.** The score is (wins + ties / 2) / pairs, 0.5 meaning no preference; its 95 %
  interval is a percentile bootstrap over pairs (seeded, so a report is reproducible). Pairs without a
  usable verdict (the judge answered neither A, B nor tie) are counted as *invalid* and left out.
- **Retries.** Connection errors, timeouts, rate limits and server errors are retried with exponential
  back-off; a refused key or a malformed request stops the run with the endpoint's message. An answer
  that names no verdict is asked again only when the judge samples (``temperature > 0``): a greedy judge
  would only repeat it.
- **A per-run cache.** Every answer is appended to ``cache.jsonl`` in the output folder, keyed by a hash of
  the exact request (model, messages with the image's hash, settings), so an interrupted or repeated run
  asks nothing twice.
- The judge prompt lives in ``repic.prompts`` (``JUDGE_SYSTEM_PROMPT``, ``judge_prompt``). The image is
  sent as a base64 data URL, or left out (``with_images=False``) for text-only judges.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import RepicError
from ..prompts import JUDGE_SYSTEM_PROMPT, judge_prompt
from .metrics import CaptionRow
from .predictions import load_predictions

OUTCOMES: tuple[str, ...] = ("win", "tie", "loss", "invalid")
_VERDICT = re.compile(r"^\W*(?:(?:the\s+)?(?:final\s+)?(?:answer|verdict)\s*(?:is)?\s*[:\-]?\s*)?(?:caption\s+)?"
                      r"(A|B|tie|equal|both)\b", re.IGNORECASE)


@dataclass(frozen=True)
class JudgePair:
    """One image with a caption from each file: ``first`` from file A, ``second`` from file B."""

    image: str
    concepts: tuple[str, ...]
    question: str
    first: str
    second: str


@dataclass(frozen=True)
class Judgement:
    """The judge's two answers on one pair (A first, then B first) and what they add up to."""

    pair: JudgePair
    answer_ab: str | None
    answer_ba: str | None
    outcome: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.pair), "answer_ab": self.answer_ab, "answer_ba": self.answer_ba, "outcome": self.outcome}


@dataclass(frozen=True)
class JudgeSummary:
    """Win / tie / loss of file A against file B, the score with its 95 % interval, and consistency."""

    wins: int
    ties: int
    losses: int
    invalid: int
    score: float | None
    low: float | None
    high: float | None
    consistency: float | None

    @property
    def judged(self) -> int:
        return self.wins + self.ties + self.losses


def parse_verdict(text: str | None) -> str | None:
    """``"A"``, ``"B"`` or ``"tie"`` when the answer starts with one, else ``None``.

    >>> [parse_verdict(t) for t in ("A", "**B**", "Answer: tie.", "Caption A is better", "B, as it names <bo>")]
    ['A', 'B', 'tie', 'A', 'B']
    >>> [parse_verdict(t) for t in ("A photo of <bo> on a sofa.", "no", "")]
    [None, None, None]
    """
    if not text:
        return None
    stripped = text.strip()
    match = _VERDICT.match(stripped)
    if match is None:
        return None
    word = match.group(1).lower()
    rest = stripped[match.end():].lstrip("*").strip()
    explicit = re.search(r"caption|answer|verdict", match.group(0), re.IGNORECASE) is not None
    if word in ("a", "b") and rest[:1].isalpha() and not explicit and len(stripped.split()) > 3:
        return None  # "A photo of ...": an article starting a sentence, not a verdict
    return {"a": "A", "b": "B"}.get(word, "tie")


def combine(ab: str | None, ba: str | None) -> str:
    """The outcome for file A from the verdicts with A shown first (``ab``) and with B shown first (``ba``).

    >>> combine("A", "B"), combine("B", "A"), combine("A", "A"), combine("tie", "B"), combine("A", None)
    ('win', 'loss', 'tie', 'tie', 'invalid')
    """
    if ab is None or ba is None:
        return "invalid"
    first = {"A": 1, "B": -1, "tie": 0}[ab]
    second = {"A": -1, "B": 1, "tie": 0}[ba]  # with B first, "A" means file B's caption
    if first == second == 1:
        return "win"
    if first == second == -1:
        return "loss"
    return "tie"


def summarize(judgements: Sequence[Judgement], *, resamples: int = 2000, seed: int = 0) -> JudgeSummary:
    """Counts, the score (wins + ties / 2) / judged, its percentile-bootstrap 95 % interval, and consistency.

    >>> pair = JudgePair("a.png", ("<bo>",), "", "x", "y")
    >>> s = summarize([Judgement(pair, "A", "B", "win")] * 3 + [Judgement(pair, "A", "A", "tie")])
    >>> (s.wins, s.ties, s.losses, s.score, s.consistency)
    (3, 1, 0, 0.875, 0.75)
    """
    counts = {outcome: 0 for outcome in OUTCOMES}
    for judgement in judgements:
        counts[judgement.outcome] += 1
    values = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[j.outcome] for j in judgements if j.outcome != "invalid"]
    if not values:
        return JudgeSummary(counts["win"], counts["tie"], counts["loss"], counts["invalid"], None, None, None, None)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(resamples))
    agreeing = sum(1 for j in judgements if j.outcome in ("win", "loss") or (
        j.outcome == "tie" and parse_verdict(j.answer_ab) == parse_verdict(j.answer_ba) == "tie"))
    return JudgeSummary(
        counts["win"], counts["tie"], counts["loss"], counts["invalid"], sum(values) / len(values),
        means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))], agreeing / len(values),
    )


def pair_rows(
    rows_a: Sequence[CaptionRow], rows_b: Sequence[CaptionRow]
) -> tuple[list[JudgePair], list[CaptionRow], list[CaptionRow]]:
    """Pairs of rows for the same image and question (the n-th such row of A with the n-th of B); and the
    rows of A and of B that found no partner."""
    waiting: dict[tuple[str, str], list[CaptionRow]] = defaultdict(list)
    for row in rows_b:
        waiting[(row.image, row.question)].append(row)
    pairs, unmatched_a = [], []
    for row in rows_a:
        partners = waiting.get((row.image, row.question))
        if not partners:
            unmatched_a.append(row)
            continue
        other = partners.pop(0)
        pairs.append(JudgePair(row.image, tuple(row.concepts), row.question, row.caption, other.caption))
    return pairs, unmatched_a, [row for rest in waiting.values() for row in rest]


def read_pairs(file_a: str | os.PathLike, file_b: str | os.PathLike) -> list[JudgePair]:
    """The pairs of two caption files; ``RepicError`` unless every row of each has its partner in the other.

    Judging only the rows the files share would report a score over fewer captions than either file holds,
    and a malformed row would drop out the same way: both are refused, naming the rows, so a score is
    always over every caption of both files. Rows without true concepts (captions of unlabeled images) are
    judged like the others: the judge looks at the image.
    """
    loaded_a, loaded_b = load_predictions(file_a), load_predictions(file_b)
    for loaded in (loaded_a, loaded_b):
        if loaded.skipped:
            raise RepicError(f"{loaded.skipped_message()}; fix those rows, so that every caption is judged")
        if not (loaded.captions or loaded.unlabeled):
            raise RepicError(f"{loaded.path} holds no caption rows; give caption files such as captions.json")
    rows_a, rows_b = loaded_a.captions + loaded_a.unlabeled, loaded_b.captions + loaded_b.unlabeled
    pairs, only_a, only_b = pair_rows(rows_a, rows_b)
    if not pairs:
        raise RepicError(
            f"{file_a} and {file_b} share no (image, question); judge two caption files of the same queries"
        )
    if only_a or only_b:
        raise RepicError(_unmatched_message(file_a, file_b, len(rows_a), len(rows_b), only_a, only_b))
    return pairs


def _unmatched_message(file_a, file_b, count_a: int, count_b: int, only_a: list[CaptionRow],
                       only_b: list[CaptionRow], shown: int = 3) -> str:
    """Both row counts and the first rows of each file that have no partner in the other."""
    def listed(rows: list[CaptionRow]) -> str:
        named = ", ".join(f"{row.image!r} ({row.question!r})" for row in rows[:shown])
        return named + (f" and {len(rows) - shown} more" if len(rows) > shown else "")

    parts = [f"{len(rows)} of {name} ({listed(rows)})" for name, rows in (("A", only_a), ("B", only_b)) if rows]
    return (
        f"A ({file_a}) has {count_a} caption rows and B ({file_b}) has {count_b}; rows are paired by image and "
        f"question, and {' and '.join(parts)} have no partner in the other file; judge two caption files of "
        "the same queries (cut both to the rows they share)"
    )


# ------------------------------------------------------------------------------------------ the judge
class JudgeCache:
    """Answers by request hash, appended to a JSONL file as they arrive (a torn last line is ignored)."""

    def __init__(self, path: Path | None) -> None:
        self.path, self._lock, self.answers = path, threading.Lock(), {}
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.answers[row["key"]] = row["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def get(self, key: str) -> str | None:
        return self.answers.get(key)

    def put(self, key: str, answer: str) -> None:
        with self._lock:
            self.answers[key] = answer
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"key": key, "answer": answer}, ensure_ascii=False) + "\n")


class ChatJudge:
    """A judge model behind an OpenAI-compatible ``/chat/completions`` endpoint (the ``openai`` client)."""

    def __init__(
        self, base_url: str, model: str, *, api_key: str | None = None, temperature: float = 0.0,
        max_tokens: int = 8, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 120.0,
        cache: JudgeCache | None = None,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise RepicError("the judge needs the openai client; pip install 'repic[judge]'") from None
        self.openai, self.model, self.temperature, self.max_tokens = openai, model, temperature, max_tokens
        self.retries, self.backoff_s, self.cache = retries, backoff_s, cache or JudgeCache(None)
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout_s)
        self.requests = 0

    def key(self, messages: list[dict[str, Any]]) -> str:
        request = {"model": self.model, "messages": messages, "temperature": self.temperature,
                   "max_tokens": self.max_tokens}
        text = json.dumps(request, sort_keys=True, ensure_ascii=False)
        text = re.sub(r"data:[^\"]+", lambda m: "sha256:" + hashlib.sha256(m.group(0).encode()).hexdigest(), text)
        return hashlib.sha256(text.encode()).hexdigest()

    def ask(self, messages: list[dict[str, Any]]) -> str | None:
        """The judge's verdict-bearing answer (cached); ``None`` when it never gave a verdict."""
        key = self.key(messages)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        attempts = self.retries + 1 if self.temperature > 0 else 1
        answer = None
        for _ in range(attempts):
            answer = self._call(messages)
            if parse_verdict(answer) is not None:
                break
        self.cache.put(key, answer or "")
        return answer

    def _call(self, messages: list[dict[str, Any]]) -> str:
        retryable = (self.openai.APIConnectionError, self.openai.APITimeoutError, self.openai.RateLimitError,
                     self.openai.InternalServerError)
        for attempt in range(self.retries + 1):
            try:
                self.requests += 1
                reply = self.client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens)
                return reply.choices[0].message.content or ""
            except retryable as exc:
                if attempt == self.retries:
                    raise RepicError(
                        f"the judge endpoint failed {self.retries + 1} times ({type(exc).__name__}: {exc}); "
                        "check that it is running, or retry later"
                    ) from None
                time.sleep(self.backoff_s * 2**attempt)
            except self.openai.APIStatusError as exc:
                raise RepicError(
                    f"the judge endpoint refused the request ({exc.status_code}: {_message(exc)}); check "
                    "--base-url, --model and the API key"
                ) from None
        raise AssertionError("unreachable")


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    return str(exc)


def image_url(path: Path) -> str:
    """The file at ``path`` as a base64 data URL."""
    kind = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode()


def resolve_images(pairs: Sequence[JudgePair], root: Path) -> dict[str, Path]:
    """Each pair's image file under ``root``; ``RepicError`` listing the first missing ones."""
    found, missing = {}, []
    for pair in pairs:
        path = Path(pair.image) if Path(pair.image).is_absolute() else root / pair.image
        (found.__setitem__(pair.image, path) if path.is_file() else missing.append(str(path)))
    if missing:
        raise RepicError(
            f"{len(missing)} image(s) of the caption files are not found, e.g. {', '.join(missing[:3])}; pass the "
            "folder they are relative to with --image-root, or judge the text alone with --no-images"
        )
    return found


def judge_pairs(
    pairs: Sequence[JudgePair], judge: ChatJudge, *, images: dict[str, Path] | None = None, workers: int = 4,
    on_done: Callable[[int, int], None] | None = None,
) -> list[Judgement]:
    """Every pair asked in both orders (``images``: the image of each pair, or ``None`` for text only)."""

    def messages(pair: JudgePair, first: str, second: str) -> list[dict[str, Any]]:
        text = {"type": "text", "text": judge_prompt(pair.concepts, pair.question, first, second)}
        content = [{"type": "image_url", "image_url": {"url": image_url(images[pair.image])}}, text] if images else [text]
        return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": content}]

    done = [0]
    lock = threading.Lock()

    def one(pair: JudgePair) -> Judgement:
        ab = judge.ask(messages(pair, pair.first, pair.second))
        ba = judge.ask(messages(pair, pair.second, pair.first))
        with lock:
            done[0] += 1
            if on_done is not None:
                on_done(done[0], len(pairs))
        return Judgement(pair, ab, ba, combine(parse_verdict(ab), parse_verdict(ba)))

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, pairs))
