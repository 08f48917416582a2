"""`bertcls serve`: the FastAPI app through TestClient (no socket), micro-batching, limits, auth, metrics."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bertcls.core.errors import UserError
from bertcls.deploy.serve import TOKEN_ENV, Busy, Metrics, MicroBatcher, ServeConfig, create_app

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def clf(trained_tiny):
    from bertcls import TextClassifier

    return TextClassifier.from_pretrained(trained_tiny, device="cpu")


@pytest.fixture
def client_for(clf, trained_tiny, monkeypatch):
    """client_for(**config) -> a started TestClient (the lifespan runs the batch worker)."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    opened = []

    def make(**kw) -> TestClient:
        app = create_app(clf, ServeConfig(model_dir=str(trained_tiny), **kw))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for c in opened:
        c.__exit__(None, None, None)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text output (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        m = re.match(pattern, line)
        if m:
            return float(m.group(1))
    return 0.0


def test_classify_labels_scores_and_top_k(client_for):
    c = client_for()
    r = c.post("/v1/classify", json={"texts": ["the film was great great", "the plot was awful awful"]})
    assert r.status_code == 200
    body = r.json()
    assert [x["label"] for x in body["results"]] == ["positive", "negative"]
    first = body["results"][0]
    assert len(first["top_k"]) == 1 and first["top_k"][0]["label"] == "positive"
    assert 0.5 < first["score"] <= 1 and first["score"] == first["top_k"][0]["score"]
    r = c.post("/v1/classify", json={"texts": ["boring"], "top_k": 0})
    top = r.json()["results"][0]["top_k"]
    assert [t["label"] for t in top] == ["negative", "positive"] and abs(
        sum(t["score"] for t in top) - 1
    ) < 1e-4
    assert top[0]["score"] >= top[1]["score"]
    r = c.post("/v1/classify", json={"texts": ["boring"], "top_k": 5})  # capped at the number of labels
    assert len(r.json()["results"][0]["top_k"]) == 2


def test_same_probabilities_as_the_library(client_for, clf):
    c = client_for()
    texts = ["nice nice", "dull", "the story is really a lovely one"]
    got = [x["top_k"] for x in c.post("/v1/classify", json={"texts": texts, "top_k": 0}).json()["results"]]
    probs = clf.predict_proba(texts)
    for row, p in zip(got, probs):
        for item in row:
            assert abs(item["score"] - p[clf.labels.index(item["label"])]) < 1e-5


@pytest.mark.parametrize(
    ("payload", "status", "phrase"),
    [
        ({"texts": ["ok"] * 5}, 413, "limit is 4"),
        ({"texts": ["x" * 101]}, 413, "101 characters"),
        ({"texts": []}, 422, "texts is empty"),
        ({"texts": ["  "]}, 422, "texts[0] is empty"),
        ({"texts": [3]}, 422, "valid string"),
        ({"text": ["typo"]}, 422, "texts"),
        ({"texts": ["a"], "top_k": -1}, 422, "top_k"),
        ({"texts": ["a"], "text_pairs": ["b"]}, 422, "single texts"),
        ([1, 2], 422, ""),
    ],
)
def test_limits_and_bad_requests(client_for, payload, status, phrase):
    c = client_for(max_texts=4, max_chars=100)
    r = c.post("/v1/classify", json=payload)
    assert r.status_code == status
    detail = r.json()["detail"]
    assert isinstance(detail, str) and phrase in detail


def test_malformed_json_and_oversized_body_are_4xx(client_for):
    c = client_for(max_texts=2, max_chars=10)
    r = c.post("/v1/classify", content=b'{"texts": ["a",', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = c.post("/v1/classify", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    r = c.post("/v1/classify", content=b"x" * 1_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: the body is cut off while it is read
        for _ in range(20):
            yield b"x" * 100_000

    r = c.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.get("/healthz").status_code == 200  # the server is fine afterwards


def test_bearer_token_auth(client_for, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    c = client_for()
    body = {"texts": ["nice nice"]}
    assert c.post("/v1/classify", json=body).status_code == 401
    r = c.post("/v1/classify", json=body, headers={"Authorization": "Bearer wrong"})
    assert (
        r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["detail"]
    )
    assert c.get("/v1/model").status_code == 401
    ok = {"Authorization": "Bearer s3cret-token"}
    assert c.post("/v1/classify", json=body, headers=ok).status_code == 200
    assert c.get("/v1/model", headers=ok).status_code == 200
    assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200  # not under /v1
    assert 'data-auth="true"' in c.get("/").text


def test_health_model_info_docs_and_page(client_for):
    c = client_for()
    assert c.get("/healthz").json()["status"] == "ok"
    info = c.get("/v1/model").json()
    assert info["labels"] == ["negative", "positive"] and info["task"] == "single_label"
    assert info["metrics"]["test"]["accuracy"] >= 0.9 and info["base_model"] and info["backend"] == "torch"
    assert c.get("/docs").status_code == 200
    schema = c.get("/openapi.json").json()
    assert "/v1/classify" in schema["paths"] and "/" not in schema["paths"]
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="classify"' in page.text and "/v1/classify" in page.text and 'data-auth="false"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing loaded from elsewhere
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_metrics_count_requests(client_for):
    c = client_for()
    for _ in range(3):
        assert c.post("/v1/classify", json={"texts": ["good", "bad"]}).status_code == 200
    c.post("/v1/classify", json={"texts": []})
    c.get("/no/such/path")
    text = c.get("/metrics").text
    assert metric(text, "bertcls_requests_total", endpoint="/v1/classify", method="POST", status="200") == 3
    assert metric(text, "bertcls_requests_total", endpoint="/v1/classify", method="POST", status="422") == 1
    assert metric(text, "bertcls_requests_total", endpoint="other", method="GET", status="404") == 1
    assert metric(text, "bertcls_request_duration_seconds_count", endpoint="/v1/classify") == 4
    assert metric(text, "bertcls_texts_total") == 6
    assert "# TYPE bertcls_batch_size histogram" in text
    assert (
        metric(text, "bertcls_batch_size_bucket", le="+Inf") == metric(text, "bertcls_batch_size_count") >= 3
    )


def test_concurrent_requests_are_micro_batched(client_for, clf):
    # A wide window makes the batching observable even on a loaded CI machine; a full batch (8) goes at once.
    c = client_for(max_wait_ms=1000, max_batch_size=8)
    texts = [f"{w} {w} film" for w in ("good", "bad", "nice", "awful", "lovely", "dull", "superb", "ugly")]

    def one(text):
        r = c.post("/v1/classify", json={"texts": [text], "top_k": 0})
        return r.status_code, r.json()["results"][0]

    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(one, texts))
    assert all(code == 200 for code, _ in answers)
    # Batched together, each request still gets its own text's answer.
    assert [res["label"] for _, res in answers] == clf.predict(texts)
    metrics = c.get("/metrics").text
    batches = metric(metrics, "bertcls_batch_size_count")
    assert batches < len(texts)  # fewer model calls than requests
    assert metric(metrics, "bertcls_batch_size_bucket", le="1") < batches or batches == 1
    assert c.app.state.batcher.largest_batch > 1


def test_batcher_back_pressure_and_mixed_pairs():
    calls = []

    def predict(texts, pairs):
        calls.append((list(texts), None if pairs is None else list(pairs)))
        time.sleep(0.01)
        return np.array(
            [[len(t), 0.0 if pairs is None else len(p)] for t, p in zip(texts, pairs or [""] * len(texts))],
            dtype=np.float32,
        )

    async def scenario():
        b = MicroBatcher(predict, max_batch=8, max_wait=0.3, max_queue=3, metrics=Metrics({}))
        await b.start()
        try:
            first = asyncio.create_task(b.submit(["aa", "b"], None))
            second = asyncio.create_task(b.submit(["ccc"], ["dddd"]))
            await asyncio.sleep(0.05)  # both are queued, the worker is still waiting for more
            with pytest.raises(Busy):
                await b.submit(["x"], None)
            return await first, await second
        finally:
            await b.stop()

    one, two = asyncio.run(scenario())
    assert one.tolist() == [[2, 0], [1, 0]] and two.tolist() == [[3, 4]]
    assert sorted(len(t) for t, _ in calls) == [1, 2]  # one batch, split into with-pairs and without


def test_onnx_backend_service(trained_tiny, tmp_path, monkeypatch):
    from bertcls import TextClassifier
    from bertcls.cli import main

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    model = tmp_path / "model"
    shutil.copytree(trained_tiny, model)
    assert main(["export", str(model)]) == 0
    onnx_clf = TextClassifier.from_pretrained(model, backend="onnx")
    texts = ["great great film", "awful awful plot"]
    with TestClient(create_app(onnx_clf, ServeConfig(model_dir=str(model), backend="onnx"))) as c:
        got = c.post("/v1/classify", json={"texts": texts}).json()["results"]
        info = c.get("/v1/model").json()
    assert [g["label"] for g in got] == TextClassifier.from_pretrained(model).predict(texts)
    assert info["backend"] == "onnx" and info["onnx"]["quantize"] == "none"


def test_missing_fastapi_names_the_extra(clf, trained_tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(UserError, match=r"pip install 'bertcls\[serve\]'"):
        create_app(clf, ServeConfig(model_dir=str(trained_tiny)))


@pytest.mark.parametrize(
    ("flag", "value"),
    [("port", 70000), ("max_batch_size", 0), ("max_wait_ms", -1), ("max_texts", 0), ("max_queue", 1)],
)
def test_config_validation(flag, value):
    with pytest.raises(UserError, match="--" + flag.replace("_", "-")):
        ServeConfig(model_dir="m", **{flag: value})
