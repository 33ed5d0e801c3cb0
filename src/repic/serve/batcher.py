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
- **Failures stay with their batch**: an exception in one call is set on that call's futures only; the
  worker goes on with the next batch.
- ``max_batch_size=1`` is one-request-at-a-time serving, the baseline the load test compares against.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..errors import RepicError
from ..inference.generate import Generated, GenerationSettings, PromptInput

RunBatch = Callable[[list[PromptInput], GenerationSettings], list[Generated]]


@dataclass
class _Item:
    prompt: PromptInput
    settings: GenerationSettings
    future: Future = field(default_factory=Future)


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

    def __init__(self, run: RunBatch, *, max_batch_size: int = 16, max_wait_s: float = 0.01) -> None:
        if max_batch_size < 1:
            raise RepicError(f"the maximum batch size must be at least 1 (got {max_batch_size})")
        if max_wait_s < 0:
            raise RepicError(f"the maximum batch wait must not be negative (got {max_wait_s} s)")
        self.run, self.max_batch_size, self.max_wait_s = run, max_batch_size, max_wait_s
        self.stats = BatchStats()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="repic-batcher", daemon=True)
        self._worker.start()

    def submit(self, prompt: PromptInput, settings: GenerationSettings) -> Future:
        """Queue one prompt; the future resolves to its ``Generated`` answer (or the batch's exception)."""
        if self._closed:
            raise RepicError("the captioning queue is closed; the server is shutting down")
        item = _Item(prompt, settings)
        self._queue.put(item)
        return item.future

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
            groups: dict[GenerationSettings, list[_Item]] = {}
            for item in batch:
                groups.setdefault(item.settings, []).append(item)
            for settings, items in groups.items():
                self._answer(settings, items)
            if stop:
                return

    def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
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

    def _answer(self, settings: GenerationSettings, items: list[_Item]) -> None:
        live = [item for item in items if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            answers = self.run([item.prompt for item in live], settings)
        except Exception as exc:  # handed to the waiting requests, which turn it into an error response
            for item in live:
                item.future.set_exception(exc)
            return
        finally:
            self.stats.seconds += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.prompts += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        for item, answer in zip(live, answers, strict=True):
            item.future.set_result(answer)
