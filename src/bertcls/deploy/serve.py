"""``bertcls serve MODEL_DIR``: an HTTP service (FastAPI) for a trained classifier, micro-batched.

Endpoints: ``POST /v1/classify`` ({"texts": [...], "top_k": k, "text_pairs": [...]}), ``POST /v1/explain``
({"texts": [...], "method": "ig"|"occlusion", "target": label}: word attributions), ``GET /v1/model``,
``GET /healthz``, ``GET /metrics`` (Prometheus text format), ``GET /docs`` (OpenAPI) and ``GET /`` (a
small web page to try the model). Texts from requests that arrive together are run as one batch (see
``batcher.py``). If the environment variable BERTCLS_API_TOKEN is set, every ``/v1/*`` request needs
``Authorization: Bearer <token>``, ``/openapi.json`` too, and ``/docs`` and ``/redoc`` are off. Requests
whose Host header is not in ``--allowed-hosts`` get a 400 (DNS rebinding). The model is fixed at start-up.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves string annotations of endpoint
# parameters against this module's globals, and the request models are imported inside create_app (so
# fastapi/pydantic stay optional imports); with real annotation objects that lookup is not needed.

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bertcls.core.config import require
from bertcls.core.errors import UserError, require_extra
from bertcls.core.options import InferenceArgs

log = logging.getLogger("bertcls.deploy.serve")

TOKEN_ENV = "BERTCLS_API_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


@dataclass
class ServeConfig(InferenceArgs):
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0 for all; then set BERTCLS_API_TOKEN)."""
    port: int = 8000
    """TCP port."""
    max_batch_size: int = 32
    """Most texts run together in one model call."""
    max_wait_ms: float = 0.0
    """How long the first queued text waits for others to join its batch. 0: a batch starts as soon as
    the model is free, with every text queued by then; under load texts queue while the previous batch
    runs, so batches still fill, and an idle server answers at once instead of waiting."""
    max_texts: int = 64
    """Most texts in one request (more: HTTP 413)."""
    max_chars: int = 5000
    """Most characters per text (more: HTTP 413); the model reads at most its max_length tokens anyway."""
    max_queue: int = 4096
    """Most texts waiting for the model; beyond it requests get HTTP 503 (back-pressure)."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Server log level (info logs every request)."""
    allowed_hosts: list[str] | None = None
    """Host header values the server answers (others: HTTP 400, against DNS rebinding); '*.example.com'
    matches subdomains, '*' any host. Default: --host and the localhost names (and this machine's name
    when --host is 0.0.0.0 or ::)."""

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
        if self.allowed_hosts is not None:
            require(len(self.allowed_hosts) > 0, "allowed_hosts", self.allowed_hosts, "must name a host")
            for pattern in self.allowed_hosts:
                require(
                    _valid_host_pattern(pattern),
                    "allowed_hosts",
                    pattern,
                    "a wildcard must be '*' alone or lead a domain, like '*.example.com'",
                )


def _valid_host_pattern(pattern: str) -> bool:
    """What TrustedHostMiddleware accepts (it asserts, which would be a traceback)."""
    if "*" not in pattern:
        return bool(pattern.strip())
    return pattern == "*" or (pattern.startswith("*.") and "*" not in pattern[1:])


def host_pattern(host: str) -> str:
    """How a host appears in a Host header: IPv6 literals in brackets, names lower-case."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(cfg: ServeConfig) -> list[str]:
    """--allowed-hosts, else the bind host and the loopback names (plus this machine's name for a
    wildcard bind: we cannot know which of its addresses clients use, so the rest is --allowed-hosts)."""
    if cfg.allowed_hosts is not None:
        return [host_pattern(h) for h in cfg.allowed_hosts]
    hosts = [*LOOPBACK]
    if cfg.host in WILDCARD_BINDS:
        hosts.append(socket.gethostname())
    else:
        hosts.append(cfg.host)
    return list(dict.fromkeys(host_pattern(h) for h in hosts))


def _require_deps() -> None:
    for mod in ("fastapi", "uvicorn", "prometheus_client"):
        require_extra(mod, "serve", "bertcls serve")


# ---- the app ------------------------------------------------------------------------------------------
def page_html(auth: bool) -> str:
    from importlib import resources

    text = resources.files("bertcls.deploy").joinpath("static", "index.html").read_text(encoding="utf-8")
    return text.replace("__BERTCLS_AUTH__", "true" if auth else "false")


def body_limit(cfg: ServeConfig) -> int:
    """Bytes a valid request can need: every text and pair at the limit, each char as a 6-byte JSON escape."""
    return 2 * cfg.max_texts * (6 * cfg.max_chars + 16) + 64 * 1024


def create_app(classifier: Any, cfg: ServeConfig) -> Any:
    """The FastAPI app for ``classifier`` (a loaded TextClassifier). The micro-batch worker starts with
    the app's lifespan: use ``with fastapi.testclient.TestClient(app) as client`` in tests."""
    _require_deps()
    from fastapi import FastAPI
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from bertcls import __version__
    from bertcls.deploy.batcher import MicroBatcher
    from bertcls.deploy.middleware import RequestGuard
    from bertcls.deploy.service_metrics import ServiceMetrics

    token = os.environ.get(TOKEN_ENV) or None  # read once: the service's auth is fixed at start-up
    clf = classifier
    clf.batch_size = max(cfg.max_batch_size, 1)
    name = Path(cfg.model_dir).name or str(cfg.model_dir)
    info = {"model": name, "backend": clf.backend, "task": clf.meta.get("task", "single_label")}
    metrics = ServiceMetrics({**info, "version": __version__}, queued=lambda: batcher.queued)
    batcher = MicroBatcher(
        lambda t, p: clf.predict_proba(t, p),
        cfg.max_batch_size,
        cfg.max_wait_ms / 1000,
        cfg.max_queue,
        metrics,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # The model, tokenizer and libraries are a few hundred thousand long-lived objects that every
        # full garbage collection would walk again, stalling the event loop and the batch hand-off for
        # tens of milliseconds (the load test's p99). Frozen, collections see only what requests create.
        gc.collect()
        gc.freeze()
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            gc.unfreeze()

    # With a token the schema is the token's business too (it lists the labels); the browsable docs
    # cannot send a bearer header, so they are off, and /openapi.json is served behind the token below.
    docs = {} if token is None else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(
        title="bertcls",
        version=__version__,
        lifespan=lifespan,
        description=f"Text classification with `{name}` ({clf.backend} backend). Labels: "
        + ", ".join(f"`{lab}`" for lab in clf.labels),
        **docs,
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    # Added last = outermost: the guard counts every answer, the host check's 400s included.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(cfg), www_redirect=False)
    app.add_middleware(RequestGuard, metrics=metrics, routes=lambda: app.routes, max_body=body_limit(cfg))
    _add_routes(app, clf, cfg, name, token)
    return app


def _add_routes(app: Any, clf: Any, cfg: ServeConfig, name: str, token: str | None) -> None:
    from typing import Annotated

    from fastapi import Depends, HTTPException, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    from bertcls import __version__
    from bertcls.deploy.batcher import Busy, TextFailed
    from bertcls.deploy.schemas import (
        ClassifyRequest,
        ClassifyResponse,
        ExplainRequest,
        ExplainResponse,
        Limits,
        Rejected,
        check_classify,
        check_explain,
        results,
        validation_error,
    )
    from bertcls.deploy.service_metrics import CONTENT_TYPE

    batcher, metrics = app.state.batcher, app.state.metrics
    labels: list[str] = list(clf.labels)
    pair_model = bool(clf.meta.get("text_pair_column"))
    limits = Limits(cfg.max_texts, cfg.max_chars)
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
        status, body = validation_error(exc.errors())
        return JSONResponse(body, status_code=status)

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    auth = [Depends(check_token)]
    refusals = {
        401: {"description": "Missing or wrong token"},
        413: {"description": "Too many or too long texts"},
    }

    @app.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        dependencies=auth,
        summary="Classify texts",
        description=f"1 to {cfg.max_texts} texts per request, each at most {cfg.max_chars} characters.",
        responses={
            **refusals,
            422: {"description": "Malformed request, or text the model cannot read"},
            503: {"description": "Server busy; retry"},
        },
    )
    async def classify(req: ClassifyRequest) -> dict:
        check_classify(req, limits, pair_model)
        try:
            probs = await batcher.submit(list(req.texts), req.text_pairs)
        except Busy:
            metrics.rejected_busy.inc()
            raise HTTPException(
                503, detail="server busy: too many texts waiting; retry shortly", headers={"Retry-After": "1"}
            ) from None
        except TextFailed as e:  # logged by the batcher; only this request fails
            which = f"texts[{e.index}]" + (f" or text_pairs[{e.index}]" if req.text_pairs else "")
            raise Rejected(
                422,
                f"{which} cannot be classified: the tokenizer or model rejected it "
                f"({type(e.error).__name__}); send plain, well-formed text",
            ) from None
        except Exception:  # logged by the batcher; the client gets a plain 500 without internals
            raise HTTPException(500, detail="inference failed; see the server log") from None
        chunks = clf.chunk_counts(req.texts, req.text_pairs)
        return {"model": name, "results": results(probs, clf.decide(probs), labels, req.top_k, chunks)}

    explaining = asyncio.Lock()  # one explanation at a time: each is tens of forward passes

    @app.post(
        "/v1/explain",
        response_model=ExplainResponse,
        dependencies=auth,
        summary="Which words drove each prediction",
        description=f"Same limits as /v1/classify ({cfg.max_texts} texts, {cfg.max_chars} characters each).",
        responses={
            **refusals,
            422: {"description": "Malformed request, unknown label, or a method the backend cannot run"},
        },
    )
    async def explain(req: ExplainRequest) -> dict:
        from starlette.concurrency import run_in_threadpool

        method = check_explain(req, limits, pair_model, labels, clf.backend)
        async with explaining:
            try:
                found = await run_in_threadpool(
                    clf.explain, list(req.texts), req.text_pairs, method, req.target
                )
            except UserError as e:
                raise Rejected(422, str(e)) from None
            except Exception:
                log.exception("explain failed")
                raise HTTPException(500, detail="explanation failed; see the server log") from None
        return {"model": name, "explanations": [e.to_dict() for e in found]}

    @app.get("/v1/model", dependencies=auth, summary="The served model: labels, task, training metrics")
    async def model_info() -> dict:
        return _model_info(clf, cfg, name, pair_model, __version__)

    if token is not None:

        @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    @app.get("/healthz", summary="Liveness: 200 while the batch worker runs")
    async def healthz() -> JSONResponse:
        ok = batcher.alive
        return JSONResponse(
            {"status": "ok" if ok else "batch worker stopped", "model": name}, status_code=200 if ok else 503
        )

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

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


def _model_info(clf: Any, cfg: ServeConfig, name: str, pair_model: bool, version: str) -> dict:
    meta = clf.meta
    labels = list(clf.labels)
    info = {
        "name": name,
        "labels": labels,
        "task": meta.get("task", "single_label"),
        "base_model": meta.get("base_model"),
        "metrics": meta.get("metrics") or {},
        "max_length": clf.max_length,
        "long_text": clf.long_text.as_dict(),
        "text_pairs": pair_model,
        "backend": clf.backend,
        "bertcls_version": version,
        "limits": {
            "max_texts": cfg.max_texts,
            "max_chars": cfg.max_chars,
            "max_batch_size": cfg.max_batch_size,
            "max_wait_ms": cfg.max_wait_ms,
        },
    }
    if clf.multi_label:
        info["thresholds"] = dict(zip(labels, (round(float(t), 6) for t in clf.thresholds)))
    if clf.decision is not None:  # binary, --tune-threshold: not argmax
        info["decision"] = {"positive": labels[clf.decision.positive], "threshold": clf.decision.threshold}
    if "temperature" in meta:
        info["temperature"] = meta["temperature"]
    if clf.baseline is not None:  # what answers is the model + TF-IDF ensemble, with these figures
        info["ensemble"] = {k: meta["ensemble"].get(k) for k in ("method", "weight", "metrics")}
    report = getattr(clf.model, "report", None)
    if clf.backend == "onnx" and report:
        info["onnx"] = {k: report.get(k) for k in ("quantize", "graph", "exporter", "opset")}
    return info


def run(cfg: ServeConfig) -> dict:
    _require_deps()
    import uvicorn

    from bertcls.classifier import TextClassifier

    clf = TextClassifier.from_args(cfg)
    app = create_app(clf, cfg)
    auth = bool(os.environ.get(TOKEN_ENV))
    if cfg.host not in LOOPBACK and not auth:
        print(
            f"bertcls serve: warning: listening on {cfg.host} without a token; anyone who can reach this "
            f"port can use the model (set {TOKEN_ENV} to require one)",
            file=sys.stderr,
        )
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    docs = "/openapi.json with the token" if auth else "/docs"
    print(
        f"bertcls serve: {cfg.model_dir} ({cfg.backend}, labels: {', '.join(clf.labels)}) on "
        f"http://{shown}:{cfg.port}/  (API docs: {docs}; token required: {'yes' if auth else 'no'}; "
        f"Host header must be one of: {', '.join(allowed_hosts(cfg))}, see --allowed-hosts)",
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
