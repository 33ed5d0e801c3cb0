"""One captioning service for ``repic app`` and ``repic serve``: the model loaded once, the concept store,
and the batching queue, answering personalized captions, OCT and VLT questions and plain chat prompts.

``CaptionService(model, database)`` loads the model (``repic.inference.load_for_captioning``: a model
folder, hub id or LoRA adapter folder), opens the database (``repic.serve.store.ConceptStore``) and starts
the queue (``repic.serve.batcher.BatchQueue``) that feeds ``repic.inference.generate_batched``. What it
chose and why:

- **Prompts come from the library's captioner**: ``Captioner.prepare`` builds the RAP / RePIC inference
  layout for captions (retrieval or given concepts) and the training layouts for OCT and VLT questions,
  so a served answer is exactly what ``repic caption`` would produce for the same inputs; only the
  ``generate`` call is shared with other requests, through the queue.
- **Per-request generation settings** (new tokens, greedy or sampling) are validated here and capped by
  ``ServiceSettings.max_new_tokens_limit``; requests with equal settings share batches. The KV cache is
  the dynamic one also on CUDA: batches here come in every size, and the static cache's compiled
  decoding would compile again for each new size.
- **Names found** in a caption are read with the strict scorer's matcher (``repic.evaluate``) over every
  concept of the database, display names included.
- **VLT boxes** are answered in the pixels the model saw and returned in the pixels of the uploaded image.
- **Every request is checked before it joins a batch** (``check_prompt``: question length, control
  tokens, image count and shape), so one bad request cannot fail the others' batch; the batching queue
  is bounded (503 with ``Retry-After`` beyond ``max_queue``), and a request that times out abandons its
  work (``Ticket.abandon``).
- **The box style travels with the model**: VLT asks in the style its training recorded
  (``trained_box_style``), so a model trained on list answers is asked for a list.
- Uploaded images stay in memory: the captioner takes them as they are.
- The model can be swapped at run time (``load_model``: the app's model picker, when enabled); a batch
  already running finishes on the model it started with.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import RepicError
from ..inference.caption import Captioner, UnusableQuery, load_for_captioning, trained_box_style
from ..inference.generate import Generated, GenerationSettings, PromptInput, generate_batched
from ..inference.inputs import check_image, check_text, special_tokens
from ..inference.queries import Query
from ..prompts import OCT_QUESTIONS, VLT_QUESTIONS, eval_question, oct_problem, vlt_problem
from ..records import concept_tag
from ..rewards.output import first_yes_no, parse_box
from .batcher import BatchQueue, QueueFull
from .store import ConceptStore
from .uploads import ImageLimits, ServiceError

MODES = ("retrieve", "given")


@dataclass(frozen=True)
class ServiceSettings:
    """How the service runs: batching, generation limits, image limits, where server-side paths may be."""

    max_batch_size: int = 16
    max_wait_ms: float = 10.0
    max_new_tokens: int = 128  # a request's default
    max_new_tokens_limit: int = 512
    request_timeout_s: float = 300.0
    device: str = "auto"
    images: ImageLimits = field(default_factory=ImageLimits)
    allowed_root: Path | None = None
    max_question_chars: int = 2_000  # a question or a chat message's text; the prompt layouts need far less
    max_images_per_request: int = 8  # images of a chat request, reference images of a concept upload
    max_queue: int = 64  # prompts waiting for a batch; more are answered 503 with Retry-After

    def __post_init__(self) -> None:
        problems = [
            f"{what} (got {value})" for failed, what, value in [
                (self.max_batch_size < 1, "the maximum batch size must be at least 1", self.max_batch_size),
                (self.max_wait_ms < 0, "the batch wait must not be negative", self.max_wait_ms),
                (not 1 <= self.max_new_tokens <= self.max_new_tokens_limit,
                 f"max new tokens must be between 1 and {self.max_new_tokens_limit}", self.max_new_tokens),
                (self.images.max_bytes < 1, "the upload limit must be positive", self.images.max_bytes),
                (self.images.max_pixels < 1, "the pixel limit must be positive", self.images.max_pixels),
                (self.max_question_chars < 1, "the question limit must be positive", self.max_question_chars),
                (self.max_images_per_request < 1, "the image count limit must be positive",
                 self.max_images_per_request),
                (self.max_queue < 1, "the queue must hold at least one request", self.max_queue),
                (self.request_timeout_s <= 0, "the request timeout must be positive", self.request_timeout_s),
            ] if failed
        ]
        if problems:
            raise RepicError("invalid server settings: " + "; ".join(problems))


@dataclass
class Answer:
    """One generated answer and what it cost."""

    generated: Generated
    queued_seconds: float


class CaptionService:
    """The model, the concept store and the batching queue behind the app and the HTTP API."""

    def __init__(
        self, model: str | Path, database: str | Path, *, base: str | Path | None = None,
        settings: ServiceSettings | None = None, embedder: str = "builtin", image_root: str | Path | None = None,
    ) -> None:
        self.settings = settings or ServiceSettings()
        self.store = ConceptStore(database, embedder=embedder, image_root=image_root)
        self._lock = threading.Lock()
        self.policy = None
        self.box_style = "json"
        self.load_model(model, base=base)
        self.batcher = BatchQueue(
            self._run_batch, max_batch_size=self.settings.max_batch_size,
            max_wait_s=self.settings.max_wait_ms / 1000, max_queue=self.settings.max_queue,
        )

    # ------------------------------------------------------------------------------------------ model
    def load_model(self, model: str | Path, *, base: str | Path | None = None) -> dict[str, Any]:
        """Load ``model`` (folder, hub id or adapter folder) and serve it from now on."""
        policy = load_for_captioning(model, base=base, device=self.settings.device)
        with self._lock:
            self.policy = policy
            self.box_style = trained_box_style(model) or "json"
            self._reserved = special_tokens(policy.processor)
        return self.model_info()

    def model_info(self) -> dict[str, Any]:
        """The served model: its source, how it was loaded, the box style it answers in."""
        info = self.policy.info
        return {"source": str(info.source), "mode": info.mode, "box_style": self.box_style}

    def _run_batch(
        self, prompts: list[PromptInput], settings: GenerationSettings, should_stop=None
    ) -> list[Generated]:
        with self._lock:
            policy = self.policy
        return generate_batched(policy.model, policy.processor, prompts, replace(settings, batch_size=len(prompts)),
                                should_stop=should_stop)

    def close(self) -> None:
        self.batcher.close()

    # ------------------------------------------------------------------------------------------ settings
    def generation(
        self, max_new_tokens: int | None = None, *, sample: bool = False, temperature: float = 1.0,
        top_p: float = 1.0, seed: int = 0,
    ) -> GenerationSettings:
        """Validated settings for one request (greedy unless ``sample``)."""
        tokens = self.settings.max_new_tokens if max_new_tokens is None else max_new_tokens
        limit = self.settings.max_new_tokens_limit
        if not 1 <= tokens <= limit:
            raise ServiceError(400, f"max_new_tokens must be between 1 and {limit} on this server (got {tokens})")
        try:
            return GenerationSettings(max_new_tokens=tokens, do_sample=sample, temperature=temperature,
                                      top_p=top_p, seed=seed, cache="dynamic")
        except RepicError as exc:
            raise ServiceError(400, str(exc)) from None

    # ------------------------------------------------------------------------------------------ answering
    def check_question(self, text: str | None, what: str = "the question") -> str | None:
        """``text`` if it may go into a prompt (length, control characters and tokens); 400 otherwise."""
        if text is None:
            return None
        try:
            return check_text(text, what=what, max_chars=self.settings.max_question_chars, reserved=self._reserved)
        except RepicError as exc:
            raise ServiceError(400, str(exc)) from None

    def check_prompt(self, prompt: PromptInput) -> PromptInput:
        """``prompt`` if it can share a batch: every text part and image checked, the image count bounded; 400 otherwise."""
        limit = self.settings.max_images_per_request
        if len(prompt.images) > limit:
            raise ServiceError(400, f"the request has {len(prompt.images)} images, more than the limit of {limit}; "
                                    "send fewer (or start the server with a larger --max-images)")
        for number, message in enumerate(prompt.messages):
            for part in message["content"]:
                if part.get("type") == "text":
                    self.check_question(part["text"], f"the text of messages[{number}]")
        for number, image in enumerate(prompt.images, start=1):
            try:
                check_image(image, what=f"image {number}")
            except RepicError as exc:
                raise ServiceError(400, str(exc)) from None
        return prompt

    def generate(self, prompt: PromptInput, settings: GenerationSettings) -> Answer:
        """Check one prompt, queue it and wait for its answer.

        503 with ``Retry-After`` when the queue is full or the answer takes longer than the timeout; a
        request that times out abandons its prompt, so no generation runs on for nobody.
        """
        self.check_prompt(prompt)
        started = time.perf_counter()
        try:
            ticket = self.batcher.submit(prompt, settings)
        except QueueFull as exc:
            raise ServiceError(503, f"the server is busy: {exc}", retry_after=self.batcher.retry_after()) from None
        try:
            generated = ticket.future.result(timeout=self.settings.request_timeout_s)
        except FutureTimeout:
            ticket.abandon()
            raise ServiceError(503, f"no answer within {self.settings.request_timeout_s:g} s; the server is busy, "
                                    "retry later", retry_after=self.batcher.retry_after()) from None
        return Answer(generated, time.perf_counter() - started)

    def caption(
        self, image: Image.Image, *, mode: str = "retrieve", concepts: list[str] | None = None,
        question: str | None = None, top_k: int = 2, generation: GenerationSettings | None = None,
    ) -> dict[str, Any]:
        """A personalized caption of ``image``: retrieval of the top-K concepts, or the ``concepts`` given."""
        if mode not in MODES:
            raise ServiceError(400, f"unknown mode {mode!r}; use 'retrieve' (top-K concepts) or 'given' (concepts=...)")
        tags = [concept_tag(tag.strip()) for tag in concepts or [] if tag.strip()]
        if mode == "given" and not tags:
            raise ServiceError(400, "mode 'given' needs the concepts to show: pass concepts, e.g. 'bo,kim'")
        if top_k < 1:
            raise ServiceError(400, f"top_k must be at least 1 (got {top_k})")
        self.check_question(question)
        for tag in tags:
            self.store.get(tag)
        started = time.perf_counter()
        retriever = self.store.retriever(top_k) if mode == "retrieve" else None
        query = Query("request", 1, Path("query.png"), "upload", question=question or eval_question(0), concepts=tags)
        prepared = self._prepare(query, image, "retrieve" if retriever else "skip", retriever)
        answer = self.generate(prepared.prompt, generation or self.generation())
        database = retriever.database if retriever else self.store.database()
        aliases = {c.tag: [c.name] for c in database if c.name.strip()}
        from ..evaluate.metrics import named_concepts

        return {
            "caption": answer.generated.text,
            "names": named_concepts(answer.generated.text, [c.tag for c in database], aliases),
            "mode": "given" if mode == "given" else "retrieve",
            "concepts_shown": [tag for tag, _ in prepared.references],
            "retrieved": [{"tag": r.tag, "score": None if r.score is None else round(r.score, 4), "view": r.view,
                           "reference": _reference_number(database, r.tag, r.image)} for r in prepared.retrieved],
            "new_tokens": answer.generated.new_tokens,
            "finished": answer.generated.ended,
            "timings": _timings(prepared.retrieval_seconds, answer.queued_seconds, started),
        }

    def recognize(self, image: Image.Image, concept: str, *, generation: GenerationSettings | None = None) -> dict[str, Any]:
        """OCT: is ``concept`` in ``image``? Asked with its first reference image, as RePIC trains it."""
        found = self.store.get(concept)
        started = time.perf_counter()
        problem = oct_problem(found.tag, 1, OCT_QUESTIONS[0])
        query = Query("request", 1, Path("query.png"), "upload", task="oct", question=problem,
                      concepts=[found.tag], references=[(found.tag, found.images[0])])
        prepared = self._prepare(query, image, "auto")
        answer = self.generate(prepared.prompt, generation or self.generation(16))
        said = first_yes_no(answer.generated.text, word_boundary=True)
        return {"concept": found.tag, "question": problem, "answer": said,
                "present": None if said is None else said == "yes", "raw": answer.generated.text,
                "timings": _timings(0.0, answer.queued_seconds, started)}

    def locate(self, image: Image.Image, concept: str, *, generation: GenerationSettings | None = None) -> dict[str, Any]:
        """VLT: the box of ``concept`` in ``image``, in the image's own pixels (``None`` if no box is given)."""
        found = self.store.get(concept)
        started = time.perf_counter()
        problem = vlt_problem(VLT_QUESTIONS[0], found.tag, tag=found.tag, info=found.info)
        query = Query("request", 1, Path("query.png"), "upload", task="vlt", question=problem, concepts=[found.tag])
        prepared = self._prepare(query, image, "auto")
        answer = self.generate(prepared.prompt, generation or self.generation(48))
        box = parse_box(answer.generated.text, lenient=True)
        return {"concept": found.tag, "question": problem, "box": None if box is None else self._image_box(box, image),
                "raw": answer.generated.text, "timings": _timings(0.0, answer.queued_seconds, started)}

    def _prepare(self, query: Query, image: Image.Image, mode: str, retriever=None):
        """The captioner's prompt for ``query`` with ``image`` (in memory) as its query image.

        Without retrieval the captioner only reads the concepts' fields and images from the current
        snapshot; it is handed the snapshot directly, since checking every reference image of the
        database on each request (what ``Captioner(database=...)`` does) would cost more than the answer.
        A reference image gone missing since is reported for the query that needs it (409).
        """
        captioner = Captioner(self.policy.model, self.policy.processor, retriever=retriever, box_style=self.box_style)
        if retriever is None:
            captioner.database = self.store.database()
        try:
            return captioner.prepare(query, mode, image=image)
        except UnusableQuery as exc:
            if exc.part == "reference":
                raise ServiceError(409, f"{exc}; fix the concept database (`repic db validate`)") from None
            raise ServiceError(400, str(exc)) from None
        except ServiceError:
            raise
        except RepicError as exc:
            raise ServiceError(400, str(exc)) from None

    def _image_box(self, box, image: Image.Image) -> list[int]:
        """A box in the model's pixels scaled to ``image``'s pixels and clipped to it."""
        width, height = self._model_size(image.width, image.height)
        sx, sy = image.width / width, image.height / height
        x1, y1, x2, y2 = box
        clip_x = lambda v: int(round(min(max(v * sx, 0), image.width)))  # noqa: E731
        clip_y = lambda v: int(round(min(max(v * sy, 0), image.height)))  # noqa: E731
        return [clip_x(x1), clip_y(y1), clip_x(x2), clip_y(y2)]

    def _model_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of an image as the processor resizes it (Qwen's smart resize)."""
        image_processor = getattr(self.policy.processor, "image_processor", None)
        size = getattr(image_processor, "size", None) or {}
        get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
        low, high = get("shortest_edge"), get("longest_edge")
        if not isinstance(low, int) or not isinstance(high, int):
            return width, height
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        factor = getattr(image_processor, "patch_size", 14) * getattr(image_processor, "merge_size", 2)
        new_height, new_width = smart_resize(height, width, factor, low, high)
        return new_width, new_height

    def health(self) -> dict[str, Any]:
        """Status for a load balancer and a reader: names only, no server paths."""
        source = str(self.policy.info.source)
        model = Path(source).name if Path(source).is_absolute() else source
        return {"status": "ok", "model": {**self.model_info(), "source": model}, "database": self.store.path.name,
                "concepts": len(self.store.database()), "batching": {
                    "max_batch_size": self.settings.max_batch_size, "max_wait_ms": self.settings.max_wait_ms,
                    "max_queue": self.settings.max_queue, "waiting": self.batcher.waiting,
                    **self.batcher.stats.to_json()}}


def _reference_number(database, tag: str, image: Path) -> int:
    """Which of ``tag``'s reference images (1 = the first) retrieval matched and showed."""
    images = database.get(tag).images
    return images.index(image) + 1 if image in images else 1


def _timings(retrieval: float, generation: float, started: float) -> dict[str, float]:
    return {"retrieval_s": round(retrieval, 4), "generation_s": round(generation, 4),
            "total_s": round(time.perf_counter() - started, 4)}
