"""The micro-batcher behind ``bertcls serve``: texts from concurrent requests run through the model together.

A failing model call must not take innocent requests down with it: when a batch raises, the batcher
retries it request by request, and a request that still fails, text by text, so only the text that
breaks the model fails (with :class:`TextFailed`, which the service answers with a 422 naming it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

log = logging.getLogger("bertcls.deploy.serve")

Predict = Callable[[list[str], list[str] | None], np.ndarray]
# What a text the tokenizer or model cannot take raises (the Rust tokenizer: TypeError on a lone
# surrogate). Other errors (out of memory, a broken model) are the server's fault, not the text's.
INPUT_ERRORS = (TypeError, ValueError)


class Busy(Exception):
    """The queue is full."""


class TextFailed(Exception):
    """One text of a request failed on its own, with an error of the kind bad input raises."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(f"text {index} failed: {type(error).__name__}")
        self.index = index
        self.error = error


class BatchObserver(Protocol):
    def observe_batch(self, size: int, seconds: float) -> None: ...

    def observe_failed_batch(self) -> None: ...


@dataclass
class _Item:
    text: str
    pair: str | None
    future: asyncio.Future
    request: int  # which submit() call the text came with
    index: int  # its position in that request


class MicroBatcher:
    """One asyncio queue of texts and one worker task that runs them through the model in batches.

    Each text carries a future; a request awaits its texts' futures. The worker takes the first waiting
    text, then keeps taking texts until the batch is full or ``max_wait`` has passed (with 0, the default
    of ``bertcls serve``: whatever is queued at that moment), runs the batch in a
    single-thread executor (so the event loop keeps accepting requests meanwhile, and the model — which
    uses its own intra-op threads — is never called concurrently) and resolves the futures. Under load the
    queue refills while a batch runs, so batches fill up without waiting."""

    def __init__(
        self,
        predict: Predict,
        max_batch: int,
        max_wait: float,
        max_queue: int,
        observer: BatchObserver | None = None,
    ):
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.observer = observer
        self.queued = 0
        self.largest_batch = 0
        self.failed_batches = 0
        self.queue: asyncio.Queue[_Item] | None = None
        self.task: asyncio.Task | None = None
        self.executor: ThreadPoolExecutor | None = None
        self._ids = itertools.count()

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertcls-model")
        self.task = asyncio.create_task(self._worker(), name="bertcls-batcher")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        while self.queue is not None and not self.queue.empty():
            item = self.queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("server shutting down"))
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def submit(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        """Probabilities for ``texts`` (rows in order), computed together with other requests' texts.
        Raises :class:`Busy` when the queue is full, :class:`TextFailed` when one of the texts breaks
        the model on its own."""
        assert self.queue is not None, "the batcher runs inside the app's lifespan"
        if self.queued + len(texts) > self.max_queue:
            raise Busy
        loop = asyncio.get_running_loop()
        request = next(self._ids)
        futures = []
        for i, text in enumerate(texts):
            fut = loop.create_future()
            self.queue.put_nowait(_Item(text, None if pairs is None else pairs[i], fut, request, i))
            futures.append(fut)
        self.queued += len(texts)
        try:
            # return_exceptions: every future's outcome is retrieved (no "never retrieved" log noise).
            rows = await asyncio.gather(*futures, return_exceptions=True)
        except asyncio.CancelledError:  # client went away: the worker skips texts whose future is done
            for fut in futures:
                fut.cancel()
            raise
        for row in rows:
            if isinstance(row, BaseException):
                raise row
        return np.stack(rows)

    async def _collect(self) -> list[_Item]:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        self.queued -= len(batch)
        return batch

    def _run(self, items: list[_Item]) -> np.ndarray:
        """Model call for some texts. Texts with and without a second segment go in separate calls, as a
        tokenizer call takes pairs for all rows or none."""
        texts = [it.text for it in items]
        has_pair = [it.pair is not None for it in items]
        if all(has_pair) or not any(has_pair):
            return self.predict(texts, [it.pair for it in items] if any(has_pair) else None)  # type: ignore[misc]
        out: np.ndarray | None = None
        for flag in (True, False):
            idx = [i for i, h in enumerate(has_pair) if h == flag]
            probs = self.predict([texts[i] for i in idx], [items[i].pair for i in idx] if flag else None)  # type: ignore[misc]
            if out is None:
                out = np.zeros((len(items), probs.shape[1]), dtype=np.float32)
            out[idx] = probs
        assert out is not None
        return out

    def _process(self, items: list[_Item]) -> tuple[list, bool]:
        """Runs in the executor: one outcome (a row or an exception) per item, and whether the batch
        failed as a whole and had to be split."""
        try:
            return list(self._run(items)), False
        except Exception as e:
            first_error = e
        requests: dict[int, list[int]] = {}
        for pos, it in enumerate(items):
            requests.setdefault(it.request, []).append(pos)
        log.warning(
            "a batch of %d texts from %d requests failed (%s); retrying request by request",
            len(items),
            len(requests),
            type(first_error).__name__,
        )
        outcomes: list = [None] * len(items)
        for positions in requests.values():
            members = [items[p] for p in positions]
            rows = self._isolate(members, first_error if len(requests) == 1 else None)
            for p, row in zip(positions, rows):
                outcomes[p] = row
        return outcomes, True

    def _isolate(self, members: list[_Item], known_error: Exception | None) -> list:
        """One request's outcomes: all of it at once, else text by text so only the culprit fails."""
        if known_error is None:
            try:
                return list(self._run(members))
            except Exception as e:
                known_error = e
        if len(members) == 1:
            return [self._blame(members[0], known_error)]
        outcomes: list = []
        for it in members:
            try:
                outcomes.append(self._run([it])[0])
            except Exception as e:
                outcomes.append(self._blame(it, e))
        return outcomes

    @staticmethod
    def _blame(item: _Item, error: Exception) -> BaseException:
        if isinstance(error, INPUT_ERRORS):
            log.warning(
                "text %d of a request cannot be classified: %s: %s", item.index, type(error).__name__, error
            )
            return TextFailed(item.index, error)
        log.error("inference failed for a text", exc_info=error)
        return error

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [it for it in batch if not it.future.done()]
            if not live:
                continue
            start = time.perf_counter()
            try:
                outcomes, split = await loop.run_in_executor(self.executor, self._process, live)
            except Exception as e:  # the executor itself failed; the worker keeps serving
                log.exception("inference failed for a batch of %d texts", len(live))
                outcomes, split = [e] * len(live), True
            self._observe(len(live), time.perf_counter() - start, split)
            for it, outcome in zip(live, outcomes):
                if it.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    it.future.set_exception(outcome)
                else:
                    it.future.set_result(outcome)

    def _observe(self, size: int, seconds: float, split: bool) -> None:
        self.largest_batch = max(self.largest_batch, size)
        self.failed_batches += split
        if self.observer is not None:
            self.observer.observe_batch(size, seconds)
            if split:
                self.observer.observe_failed_batch()
