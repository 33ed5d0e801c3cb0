"""A second lane for the demo's stages: ``SecondLane`` runs stages in another process on the same run folder.

Why: the demo trains with one torch thread (a second thread made the tiny model's steps slower, see
``repic.world.demo.settings``), so on a 2-core machine one core would idle while GRPO trains; the models
to train and evaluate do not wait for each other, so half of them (by cost) run in the second lane.

How: a spawned process (not forked: the parent's torch and OpenMP threads do not survive a fork safely)
calls ``work(book, *args)`` with a ``StageBook`` of its own over the same folder, so its stages keep their
records exactly as in one lane. Its progress lines come back through a queue and are said by the parent as
they arrive; its finished stage records and its return value come back at the end. An error in the lane is
raised again in the parent by ``join``; Ctrl-C reaches both processes (one terminal), and each stops its
training at a checkpoint as in one lane.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import RepicError
from ...progress import Progress

_STOP_WAIT_SECONDS = 60  # what an interrupted lane gets to save its checkpoint before it is terminated


class LaneInterrupted(Exception):
    """The second lane stopped on Ctrl-C; what it finished is kept."""


def _lane_main(folder: Path, work: Callable[..., Any], args: tuple, threads: int, quiet: bool, messages: Any) -> None:
    import torch

    from .stages import DemoInterrupted, StageBook

    if quiet:  # as quiet as the parent: the libraries' bars would cut through the progress lines
        from ...cli.quiet import quiet_libraries

        quiet_libraries()
    torch.set_num_threads(threads)
    book = StageBook(folder, say=lambda line: messages.put(("line", line)))
    try:
        value = work(book, *args)
        messages.put(("done", book.records, value))
    except (DemoInterrupted, KeyboardInterrupt) as exc:
        messages.put(("interrupted", book.records, str(exc) or "interrupted"))
    except RepicError as exc:
        messages.put(("error", book.records, str(exc)))
    except BaseException:  # a bug: the parent shows the whole traceback
        messages.put(("crash", book.records, traceback.format_exc()))


class SecondLane:
    """``work(book, *args)`` in a second process; ``join()`` returns ``(records, value)`` or raises its error."""

    def __init__(self, folder: Path, work: Callable[..., Any], args: tuple, *, threads: int, say: Progress) -> None:
        from transformers.utils import logging as transformers_logging

        context = multiprocessing.get_context("spawn")
        self.say = say
        self.messages = context.Queue()
        quiet = not transformers_logging.is_progress_bar_enabled()
        self.process = context.Process(
            target=_lane_main, args=(folder, work, args, threads, quiet, self.messages), name="repic-demo-lane",
            daemon=True,
        )
        self.outcome: tuple | None = None
        self.reader = threading.Thread(target=self._read, name="repic-demo-lane-reader", daemon=True)

    def start(self) -> SecondLane:
        self.process.start()
        self.reader.start()
        return self

    def _read(self) -> None:
        exited = False
        while True:
            try:
                # once the process has exited, what it sent before is still in the pipe: read it out first
                message = self.messages.get(timeout=1.0 if exited else 0.5)
            except queue_module.Empty:
                if exited:  # ended without a word (killed): nothing more will come
                    self.outcome = ("crash", {}, f"the second lane exited with code {self.process.exitcode}")
                    return
                exited = not self.process.is_alive()
                continue
            if message[0] == "line":
                self.say(message[1])
            else:
                self.outcome = message
                return

    def join(self) -> tuple[dict, Any]:
        """Wait for the lane; its stage records and return value, or its error raised here."""
        self.reader.join()
        self.process.join()
        kind, records, detail = self.outcome
        if kind == "done":
            return records, detail
        if kind == "interrupted":
            raise LaneInterrupted(detail)
        if kind == "error":
            raise RepicError(detail)
        raise RuntimeError(f"a stage of the demo's second lane failed:\n{detail}")

    def stop(self, *, wait: bool) -> None:
        """End the lane after the first lane failed: let it finish an interruption (``wait``), else end it now."""
        if wait:
            self.process.join(_STOP_WAIT_SECONDS)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.reader.join(5)
