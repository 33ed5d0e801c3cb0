"""A batching queue in front of the captioner: concurrent requests answered together, one batch at a time.

Requests arrive one by one from many clients; ``generate_batched`` is several times faster per answer on
a batch than on one prompt (``benchmarks/caption_throughput.py``). ``BatchQueue.submit(prompt, settings)``
returns a ``Future``; one worker thread takes the first waiting prompt, gathers more for up to
``max_wait_s`` or until ``max_batch_size``, and runs them in one call. What it chose and why:

- **One worker thread**, so the model runs one batch at a time (a CPU or a GPU gains nothing from two
  interleaved batches, and the model is not shared between threads mid-call). While it runs, new
  requests queue up, so under load batches fill without any wait at all; ``max_wait_s`` only matters
  when the server is nearly idle, and bounds the latency it adds then.
- **Only prompts with the same generation settings share a batch** (``generate`` takes one set per
  call); a gathered batch is split by settings, in arrival order.
- **One request's failure is its own**: requests are validated before they are queued, and when a batch
  still fails, each of its prompts is run again alone, so only the prompt that fails alone gets the
  exception; the worker goes on with the next batch.
- **Bounded**: at most ``max_queue`` prompts wait; ``submit`` beyond that raises ``QueueFull`` (the
  server answers 503 with ``Retry-After: retry_after()``) instead of letting the wait grow without end.
- **Abandoned work stops**: a caller that gives up (``Ticket.abandon``, e.g. on its timeout) is dropped
  if still waiting, and a running batch whose every caller gave up stops generating at the next token.
- ``max_batch_size=1`` is one-request-at-a-time serving, the baseline the load test compares against.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..errors import RepicError
from ..inference.generate import Generated, GenerationSettings, PromptInput

# run(prompts, settings, should_stop): the answers, in order; generation may end early once should_stop()
RunBatch = Callable[[list[PromptInput], GenerationSettings, Callable[[], bool]], list[Generated]]


class QueueFull(RepicError):
    """The queue holds ``max_queue`` prompts already; the caller should retry later."""


@dataclass
class Ticket:
    """A queued prompt: its answer (``future``) and the way to give up on it (``abandon``)."""

    prompt: PromptInput
    settings: GenerationSettings
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def abandon(self) -> None:
        """Give up: dropped if still queued; its batch stops early once every prompt in it is abandoned."""
        self.abandoned.set()
        self.future.cancel()


@dataclass
class BatchStats:
    """What the queue has done so far."""

    batches: int = 0
    prompts: int = 0
    largest: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, float | int]:
        mean = self.prompts / self.batches if self.batches else 0.0
        return {"batches": self.batches, "prompts": self.prompts, "largest_batch": self.largest,
                "mean_batch": round(mean, 2), "generation_seconds": round(self.seconds, 3)}


class BatchQueue:
    """Prompts in, answers out through futures, generated in batches by one worker thread."""

    def __init__(
        self, run: RunBatch, *, max_batch_size: int = 16, max_wait_s: float = 0.01, max_queue: int = 256
    ) -> None:
        if max_batch_size < 1:
            raise RepicError(f"the maximum batch size must be at least 1 (got {max_batch_size})")
        if max_wait_s < 0:
            raise RepicError(f"the maximum batch wait must not be negative (got {max_wait_s} s)")
        if max_queue < 1:
            raise RepicError(f"the queue must hold at least 1 prompt (got {max_queue})")
        self.run, self.max_batch_size, self.max_wait_s, self.max_queue = run, max_batch_size, max_wait_s, max_queue
        self.stats = BatchStats()
        self._queue: queue.Queue[Ticket | None] = queue.Queue()
        self._waiting = 0  # prompts submitted and not yet taken into a batch
        self._count_lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="repic-batcher", daemon=True)
        self._worker.start()

    def submit(self, prompt: PromptInput, settings: GenerationSettings) -> Ticket:
        """Queue one prompt; its future resolves to the ``Generated`` answer (or the prompt's own exception).

        ``QueueFull`` when ``max_queue`` prompts are waiting already.
        """
        if self._closed:
            raise RepicError("the captioning queue is closed; the server is shutting down")
        with self._count_lock:
            if self._waiting >= self.max_queue:
                raise QueueFull(f"{self._waiting} requests are waiting already; retry in {self.retry_after()} s")
            self._waiting += 1
        ticket = Ticket(prompt, settings)
        self._queue.put(ticket)
        return ticket

    @property
    def waiting(self) -> int:
        return self._waiting

    def retry_after(self) -> int:
        """Whole seconds until the waiting prompts are likely answered (at least 1): what ``Retry-After`` says."""
        per_batch = self.stats.seconds / self.stats.batches if self.stats.batches else 1.0
        batches = self._waiting / self.max_batch_size + 1
        return max(1, min(120, math.ceil(per_batch * batches)))

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker after the prompts already queued."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            self._taken(batch)
            groups: dict[GenerationSettings, list[Ticket]] = {}
            for item in batch:
                groups.setdefault(item.settings, []).append(item)
            for settings, items in groups.items():
                self._answer(settings, items)
            if stop:
                return

    def _gather(self, first: Ticket) -> tuple[list[Ticket], bool]:
        """``first`` and whatever else arrives within the wait, up to the batch size; and whether to stop."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:  # take what is already waiting without sleeping, then wait out the deadline
                item = self._queue.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _taken(self, items: list[Ticket]) -> None:
        with self._count_lock:
            self._waiting -= len(items)

    def _answer(self, settings: GenerationSettings, items: list[Ticket]) -> None:
        live = [item for item in items if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            answers = self._run(live, settings)
        except Exception as exc:  # noqa: BLE001 - any failure of the batch is retried per prompt below
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            for item in live:  # one prompt's fault must not fail the others: each alone, its own outcome
                try:
                    item.future.set_result(self._run([item], settings)[0])
                except Exception as alone:  # handed to its request, which answers with an error
                    item.future.set_exception(alone)
            return
        for item, answer in zip(live, answers, strict=True):
            item.future.set_result(answer)

    def _run(self, items: list[Ticket], settings: GenerationSettings) -> list[Generated]:
        started = time.perf_counter()
        try:
            answers = self.run([item.prompt for item in items], settings,
                               lambda: all(item.abandoned.is_set() for item in items))
        finally:
            self.stats.seconds += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.prompts += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        return answers
