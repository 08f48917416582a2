"""`bertcls serve`: the FastAPI app through TestClient (no socket), micro-batching, limits, auth, metrics,
allowed hosts, and failure isolation (one client's bad text must not fail other clients' requests)."""

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
from bertcls.deploy.batcher import Busy, MicroBatcher, TextFailed
from bertcls.deploy.serve import TOKEN_ENV, ServeConfig, allowed_hosts, create_app

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
        client = TestClient(app, base_url="http://localhost")  # an allowed Host (testserver is not)
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
        ({"texts": ["ok"] * 5}, 413, "5 texts in one request; the limit is 4; split them"),
        ({"texts": ["x" * 101]}, 413, "texts[0] has 101 characters; the limit is 100"),
        ({"texts": []}, 422, "texts is empty; send at least one text"),
        ({"texts": ["ok", "  "]}, 422, "texts[1] is empty; every text needs some words"),
        ({"texts": ["ok", 3]}, 422, "texts[1]: Input should be a valid string"),
        ({"text": ["typo"]}, 422, "texts: Field required; text: Extra inputs are not permitted"),
        ({"texts": ["a"], "top_k": -1}, 422, "top_k: Input should be greater than or equal to 0"),
        ({"texts": ["a"], "text_pairs": ["b"]}, 422, "this model reads single texts; leave out text_pairs"),
        ({"texts": ["a", "b"], "text_pairs": ["c"]}, 422, "2 texts but 1 text_pairs; give one pair per text"),
        ([1, 2], 422, "body: Input should be a valid dictionary"),
    ],
)
def test_limits_and_bad_requests(client_for, payload, status, phrase):
    c = client_for(max_texts=4, max_chars=100)
    r = c.post("/v1/classify", json=payload)
    assert r.status_code == status
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert detail.startswith(phrase), detail


# Lone surrogates: JSON can carry them as escapes; Python decodes them into a str the tokenizer rejects.
@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (rb'{"texts": ["\ud800"]}', "texts[0] has a lone surrogate (U+D800) at character 0"),
        (rb'{"texts": ["fine", "a\udfffb"]}', "texts[1] has a lone surrogate (U+DFFF) at character 1"),
        (rb'{"texts": ["fine"], "text_pairs": ["\ud83d"]}', "text_pairs[0] has a lone surrogate (U+D83D)"),
    ],
)
def test_lone_surrogate_is_a_422_naming_the_text(client_for, body, phrase):
    c = client_for()
    r = c.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith(phrase) and "send well-formed text" in r.json()["detail"]
    # A proper surrogate pair is one astral character, and fine.
    ok = c.post(
        "/v1/classify",
        content=rb'{"texts": ["good \ud83d\ude00"]}',
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 200


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
        b = MicroBatcher(predict, max_batch=8, max_wait=0.3, max_queue=3)
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


def test_batcher_without_wait_answers_an_idle_request_at_once_and_still_batches_under_load():
    """Regression: the service waited 5 ms for company before every batch, so one client alone paid
    5 ms on every request. The default is now no wait: an idle server runs a text at once, and texts
    that queue while a batch runs go together in the next one."""
    assert ServeConfig(model_dir="m").max_wait_ms == 0
    sizes = []

    def predict(texts, pairs):
        sizes.append(len(texts))
        time.sleep(0.2)  # a slow model: the others queue behind the first batch
        return np.zeros((len(texts), 2), dtype=np.float32)

    async def scenario(max_wait):
        b = MicroBatcher(predict, max_batch=8, max_wait=max_wait, max_queue=64)
        await b.start()
        try:
            t0 = time.perf_counter()
            await b.submit(["alone"], None)
            alone = time.perf_counter() - t0
            first = asyncio.create_task(b.submit(["a"], None))
            await asyncio.sleep(0.05)  # the first batch is running
            rest = [asyncio.create_task(b.submit([f"t{i}"], None)) for i in range(5)]
            await asyncio.gather(first, *rest)
            return alone
        finally:
            await b.stop()

    assert asyncio.run(scenario(0.0)) < 0.2 + 0.15  # the model's 0.2 s, no wait for company
    assert sizes == [1, 1, 5]  # the five that queued behind a running batch went together
    sizes.clear()
    assert asyncio.run(scenario(0.5)) >= 0.5 + 0.2  # with --max-wait-ms 500 it waits first


def test_onnx_backend_service(trained_tiny, tmp_path, monkeypatch):
    from bertcls import TextClassifier
    from bertcls.cli import main

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    model = tmp_path / "model"
    shutil.copytree(trained_tiny, model)
    assert main(["export", str(model)]) == 0
    onnx_clf = TextClassifier.from_pretrained(model, backend="onnx")
    texts = ["great great film", "awful awful plot"]
    app = create_app(onnx_clf, ServeConfig(model_dir=str(model), backend="onnx"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        got = c.post("/v1/classify", json={"texts": texts}).json()["results"]
        info = c.get("/v1/model").json()
        explained = c.post("/v1/explain", json={"texts": texts[:1]})
        refused = c.post("/v1/explain", json={"texts": texts[:1], "method": "ig"})
    assert [g["label"] for g in got] == TextClassifier.from_pretrained(model).predict(texts)
    assert info["backend"] == "onnx" and info["onnx"]["quantize"] == "none"
    assert explained.status_code == 200 and explained.json()["explanations"][0]["method"] == "occlusion"
    assert refused.status_code == 422 and "occlusion" in refused.json()["detail"]


@pytest.mark.parametrize("module", ["fastapi", "prometheus_client"])
def test_missing_serve_dependency_names_the_extra(clf, trained_tiny, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(UserError, match=rf"needs {module}; .*pip install 'bertcls\[serve\]'"):
        create_app(clf, ServeConfig(model_dir=str(trained_tiny)))


@pytest.mark.parametrize(
    ("flag", "value"),
    [("port", 70000), ("max_batch_size", 0), ("max_wait_ms", -1), ("max_texts", 0), ("max_queue", 1)],
)
def test_config_validation(flag, value):
    with pytest.raises(UserError, match="--" + flag.replace("_", "-")):
        ServeConfig(model_dir="m", **{flag: value})


# ---- failure isolation: one client's bad text must not fail the requests batched with it ---------------
def _predict_failing_on(marker: str, error: type[Exception]):
    def predict(texts, pairs):
        if marker in texts:
            raise error(f"cannot take {marker!r}")
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    return predict


@pytest.mark.parametrize("error", [TypeError, RuntimeError])
def test_batcher_fails_only_the_request_with_the_bad_text(error):
    async def scenario():
        b = MicroBatcher(_predict_failing_on("boom", error), max_batch=8, max_wait=0.3, max_queue=64)
        await b.start()
        try:
            jobs = [b.submit(["aa"], None), b.submit(["ok", "boom", "x"], None), b.submit(["ccc"], None)]
            return await asyncio.gather(*jobs, return_exceptions=True), b
        finally:
            await b.stop()

    (first, culprit, third), b = asyncio.run(scenario())
    assert b.largest_batch == 5 and b.failed_batches == 1  # all three requests were in one batch
    assert first.tolist() == [[2, 1]] and third.tolist() == [[3, 1]]
    if error is TypeError:  # what a tokenizer raises on text it cannot take: the text is blamed
        assert isinstance(culprit, TextFailed) and culprit.index == 1
    else:  # anything else is the server's failure, passed on as such
        assert isinstance(culprit, RuntimeError) and not isinstance(culprit, TextFailed)


class FailsOn:
    """A TextClassifier whose model raises TypeError on one text that passes validation."""

    def __init__(self, clf, marker: str):
        self._clf, self._marker = clf, marker

    def __getattr__(self, name):
        return getattr(self._clf, name)

    def predict_proba(self, texts, pairs=None):
        if self._marker in texts:
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return self._clf.predict_proba(texts, pairs)


def test_a_text_that_breaks_the_model_fails_only_its_request(clf, trained_tiny, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    cfg = ServeConfig(model_dir=str(trained_tiny), max_wait_ms=2000, max_batch_size=4)
    bodies = [{"texts": ["good good film"]}, {"texts": ["fine", "boom"]}, {"texts": ["bad bad plot"]}]
    with TestClient(create_app(FailsOn(clf, "boom"), cfg), base_url="http://localhost") as c:
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: c.post("/v1/classify", json=b), bodies))
        metrics = c.get("/metrics").text
        assert c.app.state.batcher.largest_batch == 4  # the three requests shared one batch
    assert [a.status_code for a in answers] == [200, 422, 200]
    assert answers[0].json()["results"][0]["label"] == "positive"
    assert answers[2].json()["results"][0]["label"] == "negative"
    assert (
        answers[1]
        .json()["detail"]
        .startswith("texts[1] cannot be classified: the tokenizer or model rejected it")
    )
    assert metric(metrics, "bertcls_failed_batches_total") == 1


def test_attack_with_lone_surrogates_fails_no_honest_request(client_for):
    """The service under attack (a short version of `bench/loadtest.py --attack-surrogate`): honest
    clients and one client looping a lone-surrogate request, all batched together in a 20 ms window."""
    c = client_for(max_wait_ms=20)
    stop = time.monotonic() + 2.5
    honest_texts = ["good good film", "awful awful plot", "lovely story", "dull dull acting"]

    def honest(text):
        codes = []
        while time.monotonic() < stop:
            codes.append(c.post("/v1/classify", json={"texts": [text, "nice film"]}).status_code)
        return codes

    def attacker():
        codes = []
        body = rb'{"texts": ["fine", "\ud800"]}'
        while time.monotonic() < stop:
            r = c.post("/v1/classify", content=body, headers={"content-type": "application/json"})
            codes.append(r.status_code)
        return codes

    with ThreadPoolExecutor(len(honest_texts) + 1) as pool:
        attack = pool.submit(attacker)
        honest_codes = [code for codes in pool.map(honest, honest_texts) for code in codes]
        attack_codes = attack.result()
    assert len(honest_codes) >= 20 and len(attack_codes) >= 5
    assert set(honest_codes) == {200}
    assert set(attack_codes) == {422}
    assert c.app.state.batcher.largest_batch > 1  # honest requests did share batches


# ---- /metrics label bounds, docs behind the token, Host header ----------------------------------------
def test_metrics_labels_stay_bounded(client_for):
    c = client_for()
    for i in range(5):
        c.request(f"MADEUP{i}", "/v1/classify")
        c.get(f"/made/up/{i}")
    c.request("PATCH", "/v1/classify")  # a real method on a real route: 405, counted by its template
    text = c.get("/metrics").text
    assert "MADEUP" not in text and "/made/up" not in text
    assert metric(text, "bertcls_requests_total", endpoint="/v1/classify", method="other", status="405") == 5
    assert metric(text, "bertcls_requests_total", endpoint="other", method="GET", status="404") == 5
    assert metric(text, "bertcls_requests_total", endpoint="/v1/classify", method="PATCH", status="405") == 1
    series = [line for line in text.splitlines() if line.startswith("bertcls_requests_total{")]
    assert len(series) == 3


def test_metrics_are_per_app(client_for):
    a, b = client_for(), client_for()
    assert a.post("/v1/classify", json={"texts": ["good"]}).status_code == 200
    assert metric(b.get("/metrics").text, "bertcls_texts_total") == 0
    assert metric(a.get("/metrics").text, "bertcls_texts_total") == 1
    assert 'bertcls_model_info{backend="torch"' in a.get("/metrics").text


def test_token_also_guards_the_api_schema(client_for, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    c = client_for()
    # The browsable docs cannot send a bearer token: off. The schema (it lists the labels): token only.
    assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
    r = c.get("/openapi.json")
    assert r.status_code == 401 and "positive" not in r.text
    r = c.get("/openapi.json", headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 200 and "/v1/classify" in r.json()["paths"] and "`positive`" in r.text


@pytest.mark.parametrize(
    ("kw", "host", "status"),
    [
        ({}, "localhost", 200),
        ({}, "127.0.0.1:8000", 200),
        ({}, "[::1]:8000", 200),
        ({}, "evil.example", 400),
        ({}, "localhost.evil.example", 400),
        ({"allowed_hosts": ["api.example.com"]}, "api.example.com", 200),
        ({"allowed_hosts": ["api.example.com"]}, "localhost", 400),
        ({"allowed_hosts": ["*.example.com"]}, "a.example.com", 200),
        ({"allowed_hosts": ["*"]}, "anything.example", 200),
    ],
)
def test_host_header_is_checked(client_for, kw, host, status):
    c = client_for(**kw)
    r = c.get("/healthz", headers={"host": host})
    assert r.status_code == status
    if status == 400:
        assert r.text == "Invalid host header"
        text = c.get("/metrics", headers={"host": (kw.get("allowed_hosts") or ["localhost"])[0]}).text
        assert metric(text, "bertcls_requests_total", endpoint="/healthz", method="GET", status="400") == 1


def test_default_allowed_hosts():
    assert allowed_hosts(ServeConfig(model_dir="m")) == ["127.0.0.1", "localhost", "[::1]"]
    assert "10.1.2.3" in allowed_hosts(ServeConfig(model_dir="m", host="10.1.2.3"))
    import socket

    wildcard = allowed_hosts(ServeConfig(model_dir="m", host="0.0.0.0"))
    assert socket.gethostname().lower() in wildcard and "0.0.0.0" not in wildcard
    assert allowed_hosts(ServeConfig(model_dir="m", allowed_hosts=["API.example.com", "::1"])) == [
        "api.example.com",
        "[::1]",
    ]


@pytest.mark.parametrize("pattern", ["api.*.com", "*example.com", "**"])
def test_bad_allowed_hosts_pattern_is_a_user_error(pattern):
    with pytest.raises(UserError, match="--allowed-hosts"):
        ServeConfig(model_dir="m", allowed_hosts=[pattern])


def test_explain_endpoint_matches_the_library(client_for, clf):
    c = client_for()
    r = c.post("/v1/explain", json={"texts": ["great great film", "awful plot"]})
    assert r.status_code == 200
    got = r.json()["explanations"]
    want = clf.explain(["great great film", "awful plot"])
    for g, w in zip(got, want):
        assert g["method"] == "ig" and g["prediction"] == w.prediction
        assert [x["text"] for x in g["words"]] == [x.text for x in w.words]
        assert g["targets"][0]["scores"] == pytest.approx(w.targets[0].scores, abs=1e-5)
    one = c.post("/v1/explain", json={"texts": ["great film"], "target": "negative", "method": "occlusion"})
    assert one.status_code == 200 and one.json()["explanations"][0]["targets"][0]["label"] == "negative"


@pytest.mark.parametrize(
    "payload, status, phrase",
    [
        ({"texts": []}, 422, "texts is empty"),
        ({"texts": ["  "]}, 422, "texts[0] is empty"),
        ({"texts": ["good"], "target": "meh"}, 422, "not a label"),
        ({"texts": ["good"], "method": "shap"}, 422, "method"),
        ({"texts": ["good"], "top": 3}, 422, "top"),
        ({"texts": ["x" * 50]}, 413, "limit is 40"),
        ({"texts": ["a", "b", "c"]}, 413, "limit is 2"),
    ],
)
def test_explain_validation(client_for, payload, status, phrase):
    r = client_for(max_chars=40, max_texts=2).post("/v1/explain", json=payload)
    assert r.status_code == status and phrase in r.json()["detail"]


def test_explain_needs_the_token(client_for, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    c = client_for()
    assert c.post("/v1/explain", json={"texts": ["good"]}).status_code == 401
    ok = {"Authorization": "Bearer s3cret-token"}
    assert c.post("/v1/explain", json={"texts": ["good"]}, headers=ok).status_code == 200


def test_the_server_freezes_its_start_up_objects_out_of_garbage_collection(clf, trained_tiny, monkeypatch):
    """Regression (p99 latency under load): a full collection walked the model's and libraries' ~236k
    objects (160 ms measured) in the middle of serving. They are frozen while the app runs, and
    unfrozen when it stops."""
    import gc

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    gc.unfreeze()
    app = create_app(clf, ServeConfig(model_dir=str(trained_tiny)))
    with TestClient(app, base_url="http://localhost") as c:
        assert gc.get_freeze_count() > 1000
        assert c.post("/v1/classify", json={"texts": ["good film"]}).status_code == 200
    assert gc.get_freeze_count() == 0
