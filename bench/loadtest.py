"""Load test for `bertcls serve`: N concurrent clients for a fixed time against a loopback service.

Starts the service itself (``--model-dir``) or targets one already running (``--url``, loopback only:
this tool refuses other hosts). Each client posts to /v1/classify in a loop; after a warm-up, requests
are timed for ``--duration`` seconds (and at most ``--max-requests``). Reports requests/s, texts/s,
latency p50/p95/p99, errors, and the server's mean micro-batch size (from its /metrics), prints them and
writes JSON (default bench/results/loadtest_<model>_<backend>_c<N>.json).

    python bench/loadtest.py --model-dir runs/sst2 --backend onnx --concurrency 16 --duration 20
    python bench/loadtest.py --url http://127.0.0.1:8000 --concurrency 1 --duration 10   # a running server

``--attack-surrogate`` adds one attacking client that loops requests carrying a lone surrogate (JSON
``"\ud800"``, which once made the tokenizer fail the whole micro-batch) alongside the honest clients, and
reports the honest clients' failures and the attacker's status codes (the service should answer it 422
and fail no honest request; the exit status is 1 if any honest request failed):

    python bench/loadtest.py --model-dir runs/sst2 --concurrency 8 --duration 10 --attack-surrogate
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FAILED_BATCHES = "bertcls_failed_batches_total"
# Raw bytes: a JSON encoder would refuse to encode the lone surrogate itself; the escape is valid JSON.
ATTACK_BODIES = (rb'{"texts": ["\ud800"]}', rb'{"texts": ["a fine film", "\ud800"]}')
SAMPLE = [
    "a gorgeous, witty and deeply moving film",
    "the plot is a mess and the jokes fall flat",
    "it is neither as funny nor as clever as it thinks it is",
    "an unforgettable performance from the lead",
    "two hours i will never get back",
    "a quiet, patient story that rewards attention",
    "the dialogue is wooden and the pacing drags",
    "one of the most charming comedies of the year",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model-dir", help="start `bertcls serve MODEL_DIR` on 127.0.0.1 for the test")
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000 (loopback only)")
    p.add_argument(
        "--backend", choices=["torch", "onnx"], default="torch", help="backend of a started service"
    )
    p.add_argument("--onnx-dir", help="export for a started onnx service (e.g. onnx-int8)")
    p.add_argument("--threads", type=int, help="inference threads of a started service")
    p.add_argument("--max-batch-size", type=int, default=32, help="micro-batch size of a started service")
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=None,
        help="micro-batch wait of a started service (default: its own)",
    )
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients (1-256)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (1-600)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--max-requests", type=int, default=200_000, help="stop after this many measured requests")
    p.add_argument("--texts-per-request", type=int, default=1)
    p.add_argument("--data", help="texts to send: .txt (one per line) or .csv with a 'text' column")
    p.add_argument("--limit", type=int, default=2000, help="texts read from --data")
    p.add_argument(
        "--token",
        default=os.environ.get("BERTCLS_API_TOKEN"),
        help="bearer token (default: $BERTCLS_API_TOKEN)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--out", help="JSON output path")
    p.add_argument(
        "--attack-surrogate",
        action="store_true",
        help="add one client looping lone-surrogate requests; report honest failures under attack",
    )
    a = p.parse_args(argv)
    if not 1 <= a.concurrency <= 256:
        p.error("--concurrency must be between 1 and 256")
    if not 1 <= a.duration <= 600 or not 0 <= a.warmup <= 60:
        p.error("--duration must be 1-600 s and --warmup 0-60 s")
    if a.max_requests < 1 or a.texts_per_request < 1:
        p.error("--max-requests and --texts-per-request must be >= 1")
    if a.url:
        host = urlsplit(a.url).hostname
        if host not in LOOPBACK:
            p.error(
                f"refusing to load-test {host!r}: only loopback hosts ({', '.join(sorted(LOOPBACK))}) are allowed"
            )
    return a


def load_texts(path: str | None, limit: int) -> list[str]:
    if not path:
        return SAMPLE
    p = Path(path)
    if p.suffix.lower() == ".csv":
        with open(p, newline="", encoding="utf-8") as f:
            texts = [r["text"] for r in csv.DictReader(f) if r.get("text", "").strip()]
    else:
        texts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        sys.exit(f"{p}: no texts")
    return texts[:limit]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(a: argparse.Namespace) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bertcls",
        "serve",
        a.model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend",
        a.backend,
        "--max-batch-size",
        str(a.max_batch_size),
        "--max-texts",
        str(max(64, a.texts_per_request)),
        "--log-level",
        "warning",
    ]
    if a.max_wait_ms is not None:
        cmd += ["--max-wait-ms", str(a.max_wait_ms)]
    if a.onnx_dir:
        cmd += ["--onnx-dir", a.onnx_dir]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    log = Path(tempfile.mkstemp(prefix="bertcls-serve-", suffix=".log")[1])
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the service exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_service(proc)
    sys.exit(f"the service did not become healthy in 180 s; log: {log}")


def stop_service(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on Ctrl-C
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape(metrics_text: str) -> dict[str, float]:
    out = {}
    names = (
        "bertcls_batch_size_sum",
        "bertcls_batch_size_count",
        "bertcls_batch_seconds_sum",
        "bertcls_texts_total",
        FAILED_BATCHES,
    )
    for name in names:
        m = re.search(rf"^{name} (\S+)$", metrics_text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    for part in ("sum", "count"):  # the server's own time per /v1/classify request
        m = re.search(
            rf'^bertcls_request_duration_seconds_{part}{{endpoint="/v1/classify"}} (\S+)$', metrics_text, re.M
        )
        out[f"classify_seconds_{part}"] = float(m.group(1)) if m else 0.0
    return out


class Usage:
    """CPU seconds and resident memory of the client (this process) and of the server process, sampled at
    the window's start and end (and the server's RSS every second), so a result says how much of the
    machine the client itself took."""

    def __init__(self, server_pid: int | None):
        import psutil

        self.server = psutil.Process(server_pid) if server_pid else None
        self.rss_mb: list[float] = []

    def cpu(self) -> tuple[float, float | None]:
        server = None
        if self.server is not None:
            t = self.server.cpu_times()
            server = t.user + t.system
        return time.process_time(), server

    def sample_rss(self) -> None:
        if self.server is not None:
            self.rss_mb.append(self.server.memory_info().rss / 2**20)


async def drive(a: argparse.Namespace, url: str, texts: list[str], server_pid: int | None = None) -> dict:
    # aiohttp, not httpx: the client shares the machine with the server, and httpx's pure-Python
    # connection pool cost about twice the CPU per request that aiohttp's does.
    import aiohttp

    headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
    # One connection more than the clients: the /metrics snapshots must not queue behind a busy client
    # (with a single client they otherwise ran only after the whole window, and measured nothing).
    conns = a.concurrency + 1 + int(a.attack_surrogate)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    attack_statuses: Counter[str] = Counter()
    state = {"measured": 0, "last_done": 0.0, "cursor": 0}
    usage = Usage(server_pid)
    errors = (aiohttp.ClientError, asyncio.TimeoutError)
    connector = aiohttp.TCPConnector(limit=conns)
    timeout = aiohttp.ClientTimeout(total=a.timeout)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout, headers=headers) as client:
        start = time.perf_counter()
        window_start = start + a.warmup
        end = window_start + a.duration
        snap: dict[str, dict] = {}

        async def post(**kw) -> str:
            async with client.post("/v1/classify", **kw) as r:
                await r.read()
                return str(r.status)

        async def one_client() -> None:
            while True:
                now = time.perf_counter()
                if now >= end or state["measured"] >= a.max_requests:
                    return
                measured = now >= window_start
                if measured:
                    state["measured"] += 1
                i = state["cursor"]
                state["cursor"] += a.texts_per_request
                batch = [texts[(i + k) % len(texts)] for k in range(a.texts_per_request)]
                t0 = time.perf_counter()
                try:
                    status = await post(json={"texts": batch})
                except errors as e:
                    status = type(e).__name__
                t1 = time.perf_counter()
                if measured:
                    latencies.append(t1 - t0)
                    statuses[status] += 1
                    state["last_done"] = max(state["last_done"], t1)

        async def attacker() -> None:
            i = 0
            while time.perf_counter() < end:
                body = ATTACK_BODIES[i % len(ATTACK_BODIES)]
                i += 1
                try:
                    status = await post(data=body, headers={"content-type": "application/json"})
                except errors as e:
                    status = type(e).__name__
                if time.perf_counter() >= window_start:
                    attack_statuses[status] += 1

        async def metrics() -> dict[str, float]:
            async with client.get("/metrics") as r:
                return scrape(await r.text())

        async def watch_window() -> None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            snap["before"] = await metrics()
            snap["cpu_before"] = usage.cpu()  # type: ignore[assignment]
            while time.perf_counter() < end:
                usage.sample_rss()
                await asyncio.sleep(min(1.0, max(0.0, end - time.perf_counter())))
            usage.sample_rss()

        clients = [one_client() for _ in range(a.concurrency)] + ([attacker()] if a.attack_surrogate else [])
        await asyncio.gather(watch_window(), *clients)
        cpu_after = usage.cpu()
        after = await metrics()
    before = snap.get("before", {})
    n = len(latencies)
    elapsed = max(state["last_done"] - window_start, 1e-9)
    ok = statuses.get("200", 0)
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)

    def delta(name: str) -> float:
        return after[name] - before.get(name, 0.0)

    batches = delta("bertcls_batch_size_count")
    batch_texts = after["bertcls_batch_size_sum"] - before.get("bertcls_batch_size_sum", 0)
    cpu_before = snap.get("cpu_before", cpu_after)
    window = max(time.perf_counter() - window_start, 1e-9)
    client_cpu = (cpu_after[0] - cpu_before[0]) / window  # type: ignore[index]
    server_cpu = (
        None if cpu_after[1] is None else (cpu_after[1] - cpu_before[1]) / window  # type: ignore[index,operator]
    )
    return {
        "requests": n,
        "ok": ok,
        "errors": n - ok,
        "status_counts": dict(statuses),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(ok / elapsed, 2),
        "texts_per_s": round(ok * a.texts_per_request / elapsed, 2),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
            "mean": round(float(lat.mean()), 2),
            "max": round(float(lat.max()), 2),
        },
        "server_mean_batch_size": round(batch_texts / batches, 2) if batches else None,
        # the server's view: model time per micro-batch (tokenisation included), and request time from
        # the first byte read to the response (the rest of the client's latency is the client and kernel)
        "server_batch_ms_mean": round(1000 * delta("bertcls_batch_seconds_sum") / batches, 2)
        if batches
        else None,
        "server_request_ms_mean": (
            round(1000 * delta("classify_seconds_sum") / delta("classify_seconds_count"), 2)
            if delta("classify_seconds_count")
            else None
        ),
        "server_failed_batches": after[FAILED_BATCHES] - before.get(FAILED_BATCHES, 0),
        # CPU in cores (1.0 = one core busy for the whole window)
        "client_cpu_cores": round(client_cpu, 3),
        "server_cpu_cores": None if server_cpu is None else round(server_cpu, 3),
        "server_rss_mb": (
            {
                "start": round(usage.rss_mb[0], 1),
                "end": round(usage.rss_mb[-1], 1),
                "max": round(max(usage.rss_mb), 1),
            }
            if usage.rss_mb
            else None
        ),
        **({"attacker_status_counts": dict(attack_statuses)} if a.attack_surrogate else {}),
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    texts = load_texts(a.data, a.limit)
    proc = None
    try:
        if a.model_dir:
            proc, url, log = start_service(a)
            print(f"started bertcls serve {a.model_dir} ({a.backend}) at {url} (log: {log})", file=sys.stderr)
        else:
            url = a.url.rstrip("/")
        import httpx

        info = httpx.get(
            url + "/v1/model",
            headers={"Authorization": f"Bearer {a.token}"} if a.token else {},
            timeout=10,
            trust_env=False,
        )
        model = info.json() if info.status_code == 200 else {}
        result = asyncio.run(drive(a, url, texts, proc.pid if proc is not None else None))
    finally:
        if proc is not None:
            stop_service(proc)
    name = model.get("name") or (Path(a.model_dir).name if a.model_dir else "service")
    backend = model.get("backend") or a.backend
    report = {
        "model": name,
        "backend": backend,
        "onnx": model.get("onnx"),
        "url": url,
        "concurrency": a.concurrency,
        "texts_per_request": a.texts_per_request,
        "duration_s": a.duration,
        "warmup_s": a.warmup,
        "server_limits": model.get("limits"),
        "threads": a.threads,
        "attack_surrogate": a.attack_surrogate,
        "cpu_count": os.cpu_count(),
        **result,
    }
    lat = result["latency_ms"]
    print(
        f"{name} [{backend}] concurrency {a.concurrency}, {a.texts_per_request} text(s)/request, "
        f"{result['seconds']:.1f} s measured"
    )
    print(
        f"  {result['requests_per_s']:.1f} requests/s, {result['texts_per_s']:.1f} texts/s, "
        f"{result['errors']} errors of {result['requests']}"
    )
    print(
        f"  latency ms: p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}  max {lat['max']:.1f}"
    )
    print(
        f"  server: mean micro-batch {result['server_mean_batch_size']} texts, "
        f"{result['server_batch_ms_mean']} ms model time per batch, "
        f"{result['server_request_ms_mean']} ms per request"
    )
    cpu = f"client {result['client_cpu_cores']:.2f}"
    if result["server_cpu_cores"] is not None:
        cpu += f", server {result['server_cpu_cores']:.2f}"
    print(f"  CPU cores busy: {cpu} (of {os.cpu_count()})")
    if result["server_rss_mb"]:
        rss = result["server_rss_mb"]
        print(
            f"  server memory MB: {rss['start']:.0f} at the window's start, {rss['end']:.0f} at its end, max {rss['max']:.0f}"
        )
    if a.attack_surrogate:
        attacks = result["attacker_status_counts"]
        print(
            f"  under attack: {result['errors']} of {result['requests']} honest requests failed; "
            f"attacker sent {sum(attacks.values())} requests, answered {attacks}; "
            f"server batches that failed: {result['server_failed_batches']:.0f}"
        )
    suffix = "_attack" if a.attack_surrogate else ""
    default = Path(__file__).parent / "results" / f"loadtest_{name}_{backend}_c{a.concurrency}{suffix}.json"
    out = Path(a.out) if a.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"  wrote {out}")
    if a.attack_surrogate:
        return 0 if result["ok"] and not result["errors"] else 1
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
