"""``bertcls serve MODEL_DIR``: an HTTP service (FastAPI) for a trained classifier, micro-batched.

Endpoints: ``POST /v1/classify`` ({"texts": [...], "top_k": k, "text_pairs": [...]}), ``GET /v1/model``,
``GET /healthz``, ``GET /metrics`` (Prometheus text format), ``GET /docs`` (OpenAPI) and ``GET /`` (a
small web page to try the model). Texts from requests that arrive together are run as one batch: a
background worker collects queued texts until ``--max-batch-size`` or ``--max-wait-ms``, runs the model
in a thread and answers each request. If the environment variable BERTCLS_API_TOKEN is set, every
``/v1/*`` request needs ``Authorization: Bearer <token>``. The model is fixed at start-up.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves string annotations of endpoint
# parameters against this module's globals, and the request models are built inside create_app (so
# fastapi/pydantic stay optional imports); with real annotation objects that lookup is not needed.

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bertcls.core.config import InferenceArgs, require
from bertcls.core.errors import UserError, require_extra

TOKEN_ENV = "BERTCLS_API_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("bertcls.deploy.serve")


@dataclass
class ServeConfig(InferenceArgs):
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0 for all; then set BERTCLS_API_TOKEN)."""
    port: int = 8000
    """TCP port."""
    max_batch_size: int = 32
    """Most texts run together in one model call."""
    max_wait_ms: float = 5.0
    """How long the first queued text waits for others to join its batch."""
    max_texts: int = 64
    """Most texts in one request (more: HTTP 413)."""
    max_chars: int = 5000
    """Most characters per text (more: HTTP 413); the model reads at most its max_length tokens anyway."""
    max_queue: int = 4096
    """Most texts waiting for the model; beyond it requests get HTTP 503 (back-pressure)."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Server log level (info logs every request)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.port <= 65535, "port", self.port, "must be between 0 and 65535")
        require(self.max_batch_size >= 1, "max_batch_size", self.max_batch_size, "must be >= 1")
        require(
            0 <= self.max_wait_ms <= 10_000, "max_wait_ms", self.max_wait_ms, "must be between 0 and 10000"
        )
        require(self.max_texts >= 1, "max_texts", self.max_texts, "must be >= 1")
        require(self.max_chars >= 1, "max_chars", self.max_chars, "must be >= 1")
        require(self.max_queue >= self.max_texts, "max_queue", self.max_queue, "must be >= --max-texts")


def _require_deps() -> None:
    for mod in ("fastapi", "uvicorn"):
        require_extra(mod, "serve", "bertcls serve")


# ---- Prometheus metrics (text exposition format 0.0.4, written by hand: no extra dependency) -----------
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: Sequence[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for b, c in zip(self.buckets, self.counts):
            running += c
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(b)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        tail = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{tail} {_num(self.sum)}", f"{name}_count{tail} {self.count}"]
        return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _label(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and histograms, updated from the event loop thread only (so no lock)."""

    def __init__(self, info: dict[str, str]):
        self.info = info
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.texts = 0
        self.rejected_busy = 0

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, method, status)] += 1
        self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.texts += size

    def render(self, queued: int) -> str:
        out = [
            "# HELP bertcls_requests_total HTTP requests by endpoint, method and status code.",
            "# TYPE bertcls_requests_total counter",
        ]
        for (endpoint, method, status), n in sorted(self.requests.items()):
            out.append(
                f'bertcls_requests_total{{endpoint="{_label(endpoint)}",method="{method}",'
                f'status="{status}"}} {n}'
            )
        out += [
            "# HELP bertcls_request_duration_seconds Time from request to response, by endpoint.",
            "# TYPE bertcls_request_duration_seconds histogram",
        ]
        for endpoint, h in sorted(self.latency.items()):
            out += h.lines("bertcls_request_duration_seconds", f'endpoint="{_label(endpoint)}"')
        out += [
            "# HELP bertcls_batch_size Texts per model call (micro-batches).",
            "# TYPE bertcls_batch_size histogram",
            *self.batch_size.lines("bertcls_batch_size"),
            "# HELP bertcls_batch_seconds Model time per micro-batch.",
            "# TYPE bertcls_batch_seconds histogram",
            *self.batch_seconds.lines("bertcls_batch_seconds"),
            "# HELP bertcls_texts_total Texts classified.",
            "# TYPE bertcls_texts_total counter",
            f"bertcls_texts_total {self.texts}",
            "# HELP bertcls_rejected_busy_total Requests refused with 503 because the queue was full.",
            "# TYPE bertcls_rejected_busy_total counter",
            f"bertcls_rejected_busy_total {self.rejected_busy}",
            "# HELP bertcls_queue_texts Texts waiting for the model.",
            "# TYPE bertcls_queue_texts gauge",
            f"bertcls_queue_texts {queued}",
            "# HELP bertcls_model_info The model being served.",
            "# TYPE bertcls_model_info gauge",
            "bertcls_model_info{" + ",".join(f'{k}="{_label(v)}"' for k, v in self.info.items()) + "} 1",
        ]
        return "\n".join(out) + "\n"


# ---- micro-batching -----------------------------------------------------------------------------------
class Busy(Exception):
    """The queue is full."""


class MicroBatcher:
    """One asyncio queue of texts and one worker task that runs them through the model in batches.

    Each text carries a future; a request awaits its texts' futures. The worker takes the first waiting
    text, then keeps taking texts until the batch is full or ``max_wait`` has passed, runs the batch in a
    single-thread executor (so the event loop keeps accepting requests meanwhile, and the model — which
    uses its own intra-op threads — is never called concurrently) and resolves the futures. Under load the
    queue refills while a batch runs, so batches fill up without waiting."""

    def __init__(
        self,
        predict: Callable[[list[str], list[str] | None], np.ndarray],
        max_batch: int,
        max_wait: float,
        max_queue: int,
        metrics: Metrics,
    ):
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.metrics = metrics
        self.queued = 0
        self.largest_batch = 0
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.executor: ThreadPoolExecutor | None = None

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
            _, _, fut = self.queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("server shutting down"))
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def submit(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        """Probabilities for ``texts`` (rows in order), computed together with other requests' texts."""
        assert self.queue is not None, "the batcher runs inside the app's lifespan"
        if self.queued + len(texts) > self.max_queue:
            raise Busy
        loop = asyncio.get_running_loop()
        futures = []
        for i, text in enumerate(texts):
            fut = loop.create_future()
            self.queue.put_nowait((text, None if pairs is None else pairs[i], fut))
            futures.append(fut)
        self.queued += len(texts)
        try:
            rows = await asyncio.gather(*futures)
        except asyncio.CancelledError:  # client went away: the worker skips texts whose future is done
            for fut in futures:
                fut.cancel()
            raise
        return np.stack(rows)

    async def _collect(self) -> list[tuple]:
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

    def _run(self, items: list[tuple]) -> np.ndarray:
        """Model call for one batch. Texts with and without a second segment go in separate calls, as a
        tokenizer call takes pairs for all rows or none."""
        texts = [t for t, _, _ in items]
        has_pair = [p is not None for _, p, _ in items]
        if all(has_pair) or not any(has_pair):
            return self.predict(texts, [p for _, p, _ in items] if any(has_pair) else None)
        out: np.ndarray | None = None
        for flag in (True, False):
            idx = [i for i, h in enumerate(has_pair) if h == flag]
            probs = self.predict([texts[i] for i in idx], [items[i][1] for i in idx] if flag else None)
            if out is None:
                out = np.zeros((len(items), probs.shape[1]), dtype=np.float32)
            out[idx] = probs
        assert out is not None
        return out

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [item for item in batch if not item[2].done()]
            if not live:
                continue
            start = time.perf_counter()
            try:
                probs = await loop.run_in_executor(self.executor, self._run, live)
            except Exception as e:  # the requests get a 500; the worker keeps serving
                log.exception("inference failed for a batch of %d texts", len(live))
                for _, _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.metrics.observe_batch(len(live), time.perf_counter() - start)
            self.largest_batch = max(self.largest_batch, len(live))
            for (_, _, fut), row in zip(live, probs):
                if not fut.done():
                    fut.set_result(row)


# ---- the app ------------------------------------------------------------------------------------------
def page_html(auth: bool) -> str:
    from importlib import resources

    text = resources.files("bertcls.deploy").joinpath("static", "index.html").read_text(encoding="utf-8")
    return text.replace("__BERTCLS_AUTH__", "true" if auth else "false")


def body_limit(cfg: ServeConfig) -> int:
    """Bytes a valid request can need: every text and pair at the limit, each char as a 6-byte JSON escape."""
    return 2 * cfg.max_texts * (6 * cfg.max_chars + 16) + 64 * 1024


class RequestGuard:
    """ASGI middleware: counts and times every request for /metrics, and answers 413 to bodies larger than
    any valid request before they are read into memory."""

    def __init__(self, app: Any, metrics: Metrics, known_paths: Callable[[], set[str]], max_body: int):
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        path = scope.get("path", "")
        # Only routes the app has become label values: arbitrary 404 paths must not grow the metrics.
        endpoint = path if path in self.known_paths() else "other"
        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            too_big = length is not None and length.isdigit() and int(length) > self.max_body
            if too_big:
                await _send_json(
                    send_status,
                    413,
                    {"detail": f"request body over {self.max_body} bytes; send fewer or shorter texts"},
                )
            else:
                await self.app(
                    scope, self._bounded(receive, send_status) if length is None else receive, send_status
                )
        finally:
            self.metrics.observe_request(
                endpoint, scope.get("method", ""), status["code"], time.perf_counter() - start
            )

    def _bounded(self, receive: Callable, send: Callable) -> Callable:
        """A body without Content-Length (chunked): stop reading past the limit."""
        seen = {"n": 0}

        async def wrapped() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen["n"] += len(message.get("body", b""))
                if seen["n"] > self.max_body:
                    # FastAPI lets HTTPExceptions from reading the body through (other errors become 400).
                    from fastapi import HTTPException

                    raise HTTPException(
                        413, detail=f"request body over {self.max_body} bytes; send fewer or shorter texts"
                    )
            return message

        return wrapped


async def _send_json(send: Callable, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(classifier: Any, cfg: ServeConfig) -> Any:
    """The FastAPI app for ``classifier`` (a loaded TextClassifier). The micro-batch worker starts with
    the app's lifespan: use ``with fastapi.testclient.TestClient(app) as client`` in tests."""
    _require_deps()
    from typing import Annotated

    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, ConfigDict, Field

    from bertcls import __version__

    token = os.environ.get(TOKEN_ENV) or None  # read once: the service's auth is fixed at start-up
    clf = classifier
    clf.batch_size = max(cfg.max_batch_size, 1)
    labels: list[str] = list(clf.labels)
    pair_model = bool(clf.meta.get("text_pair_column"))
    name = Path(cfg.model_dir).name or str(cfg.model_dir)
    metrics = Metrics(
        {
            "model": name,
            "backend": clf.backend,
            "task": clf.meta.get("task", "single_label"),
            "version": __version__,
        }
    )
    batcher = MicroBatcher(
        lambda t, p: clf.predict_proba(t, p),
        cfg.max_batch_size,
        cfg.max_wait_ms / 1000,
        cfg.max_queue,
        metrics,
    )

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"texts": ["a gorgeous, moving film", "two hours I will never get back"], "top_k": 2}
                ]
            },
        )
        texts: list[str] = Field(
            description=f"Texts to classify: 1 to {cfg.max_texts}, each at most {cfg.max_chars} characters."
        )
        text_pairs: list[str] | None = Field(
            None, description="Second texts, one per text (only for models trained on text pairs)."
        )
        top_k: int = Field(1, ge=0, description="Labels with scores to return per text, best first; 0 = all.")

    class LabelScore(BaseModel):
        label: str
        score: float

    class Result(BaseModel):
        label: str | list[str] = Field(
            description="The predicted label (a list of labels for multi-label models)."
        )
        score: float | None = Field(
            description="Probability of the predicted label (multi-label: the highest "
            "among the predicted labels; null if none)."
        )
        top_k: list[LabelScore] = Field(description="The top_k labels with their probabilities, best first.")

    class ClassifyResponse(BaseModel):
        model: str
        results: list[Result]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="bertcls",
        version=__version__,
        lifespan=lifespan,
        description=f"Text classification with `{name}` ({clf.backend} backend). Labels: "
        + ", ".join(f"`{lab}`" for lab in labels),
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    known = {"paths": set()}
    app.add_middleware(
        RequestGuard, metrics=metrics, known_paths=lambda: known["paths"], max_body=body_limit(cfg)
    )
    bearer = HTTPBearer(auto_error=False, description=f"Needed when the server has {TOKEN_ENV} set.")

    async def check_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if token is None:
            return
        given = creds.credentials if creds is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                detail="missing or wrong API token; send the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(
                {
                    "detail": "the request body is not valid JSON; send "
                    '{"texts": ["..."], "top_k": 1} with Content-Type: application/json'
                },
                status_code=400,
            )
        parts = []
        for e in errors:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        # Only where/what/why: echoing the input back could return megabytes of text.
        slim = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse({"detail": "; ".join(parts), "errors": slim}, status_code=422)

    auth = [Depends(check_token)]

    @app.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        dependencies=auth,
        summary="Classify texts",
        responses={
            401: {"description": "Missing or wrong token"},
            413: {"description": "Too many or too long texts"},
            503: {"description": "Server busy; retry"},
        },
    )
    async def classify(req: ClassifyRequest) -> dict:
        n = len(req.texts)
        if n == 0:
            raise HTTPException(422, detail="texts is empty; send at least one text")
        if n > cfg.max_texts:
            raise HTTPException(
                413,
                detail=f"{n} texts in one request; the limit is {cfg.max_texts}; "
                f"split them over several requests",
            )
        for field_name, values in (("texts", req.texts), ("text_pairs", req.text_pairs or [])):
            for i, t in enumerate(values):
                if len(t) > cfg.max_chars:
                    raise HTTPException(
                        413, detail=f"{field_name}[{i}] has {len(t)} characters; the limit is {cfg.max_chars}"
                    )
        for i, t in enumerate(req.texts):
            if not t.strip():
                raise HTTPException(422, detail=f"texts[{i}] is empty; every text needs some words")
        if req.text_pairs is not None and len(req.text_pairs) != n:
            raise HTTPException(
                422, detail=f"{n} texts but {len(req.text_pairs)} text_pairs; give one pair per text"
            )
        if pair_model and req.text_pairs is None:
            raise HTTPException(422, detail="this model classifies text pairs; send text_pairs, one per text")
        if not pair_model and req.text_pairs is not None:
            raise HTTPException(422, detail="this model reads single texts; leave out text_pairs")
        try:
            probs = await batcher.submit(list(req.texts), req.text_pairs)
        except Busy:
            metrics.rejected_busy += 1
            raise HTTPException(
                503, detail="server busy: too many texts waiting; retry shortly", headers={"Retry-After": "1"}
            ) from None
        except Exception:  # logged by the worker; the client gets a plain 500 without internals
            raise HTTPException(500, detail="inference failed; see the server log") from None
        k = len(labels) if req.top_k == 0 else min(req.top_k, len(labels))
        chosen = clf.decide(probs)
        results = []
        for p, lab in zip(probs, chosen):
            top = np.argsort(-p, kind="stable")[:k]
            if isinstance(lab, list):
                score = max((float(p[labels.index(x)]) for x in lab), default=None)
            else:
                score = float(p[labels.index(lab)])
            results.append(
                {
                    "label": lab,
                    "score": None if score is None else round(score, 6),
                    "top_k": [{"label": labels[j], "score": round(float(p[j]), 6)} for j in top],
                }
            )
        return {"model": name, "results": results}

    @app.get("/v1/model", dependencies=auth, summary="The served model: labels, task, training metrics")
    async def model_info() -> dict:
        meta = clf.meta
        info = {
            "name": name,
            "labels": labels,
            "task": meta.get("task", "single_label"),
            "base_model": meta.get("base_model"),
            "metrics": meta.get("metrics") or {},
            "max_length": clf.max_length,
            "text_pairs": pair_model,
            "backend": clf.backend,
            "bertcls_version": __version__,
            "limits": {
                "max_texts": cfg.max_texts,
                "max_chars": cfg.max_chars,
                "max_batch_size": cfg.max_batch_size,
                "max_wait_ms": cfg.max_wait_ms,
            },
        }
        if clf.multi_label:
            info["thresholds"] = dict(zip(labels, (round(float(t), 6) for t in clf.thresholds)))
        report = getattr(clf.model, "report", None)
        if clf.backend == "onnx" and report:
            info["onnx"] = {k: report.get(k) for k in ("quantize", "graph", "exporter", "opset")}
        return info

    @app.get("/healthz", summary="Liveness: 200 while the batch worker runs")
    async def healthz() -> JSONResponse:
        ok = batcher.alive
        return JSONResponse(
            {"status": "ok" if ok else "batch worker stopped", "model": name}, status_code=200 if ok else 503
        )

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(
            metrics.render(batcher.queued), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    page = page_html(token is not None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        # Self-contained page: nothing may load from elsewhere (the host may be offline).
        csp = (
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
        )
        return HTMLResponse(
            page, headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"}
        )

    known["paths"] = {getattr(r, "path", "") for r in app.routes}
    return app


def run(cfg: ServeConfig) -> dict:
    _require_deps()
    import uvicorn

    from bertcls.classifier import TextClassifier

    clf = TextClassifier.from_pretrained(
        cfg.model_dir, backend=cfg.backend, threads=cfg.threads, onnx_dir=cfg.onnx_dir
    )
    app = create_app(clf, cfg)
    auth = bool(os.environ.get(TOKEN_ENV))
    if cfg.host not in LOOPBACK and not auth:
        print(
            f"bertcls serve: warning: listening on {cfg.host} without a token; anyone who can reach this "
            f"port can use the model (set {TOKEN_ENV} to require one)",
            file=sys.stderr,
        )
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(
        f"bertcls serve: {cfg.model_dir} ({cfg.backend}, labels: {', '.join(clf.labels)}) on "
        f"http://{shown}:{cfg.port}/  (API docs: /docs; token required: {'yes' if auth else 'no'})",
        file=sys.stderr,
    )
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)
    except SystemExit as e:  # uvicorn logs why it could not start (address in use, ...) and exits 1
        if e.code not in (0, None):
            raise UserError(
                f"cannot serve on {cfg.host}:{cfg.port} (see the message above); "
                f"pick another --port or --host"
            ) from None
    return {"stopped": True}


def summarize(result: dict) -> str:
    return ""
