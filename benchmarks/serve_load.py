"""Load test of ``repic serve``: batched serving against one-request-at-a-time serving, and overload.

In one run it starts ``repic serve`` twice on 127.0.0.1 (the shipped tiny base, a fresh copy of the shipped
concept database each time): once batching requests into the captioner (``--max-batch-size 32``) and once
answering them one at a time (``--max-batch-size 1``), everything else equal. Against each, ``--clients``
concurrent clients (threads with their own HTTP connection) each send ``--captions`` caption requests
(``POST /v1/caption``, a 112-px photo upload, skip-retrieval with one or two concepts of the database,
greedy, ``--max-new-tokens``) and, half-way through, add one concept of their own (``POST /v1/concepts``).
It reports requests/s (caption requests over the wall time of the whole load), p50 / p95 latency, errors
(every non-2xx answer or failed connection counts), the server's mean batch size, and checks afterwards
that every concept added during the run is in the database (through the API and in ``database.json``,
which must also validate). ``--rounds N`` alternates the two servers N times and reports the medians.

Loopback only, bounded in count (clients x captions requests per server) and in time (``--timeout``).
Targets on the 2-core development machine with the tiny base: 32 clients x 20 captions with 0 errors,
batched at least 3x the requests/s of one-at-a-time, every added concept present afterwards.

Measured on the 2-core development machine at a load average of 4.4 (at the start), one torch thread per
server, 32 clients x 20 captions, 32 new tokens, 2 alternating rounds (medians): batched 54.5 requests/s
(p50 0.50 s, p95 0.77 s, mean batch 15, largest 32) against 14.0 requests/s one at a time (p50 2.2 s,
p95 2.9 s): 3.90x; 0 errors in 2,560 captions; all 32 concepts added in each run present afterwards and
the database valid.

With ``--overload``, it instead starts one batched server with its default limits and measures what
a flood and a hostile client do: (1) ``--flood-clients`` x ``--flood-captions`` caption requests at once
(256 x 4 by default): every answer must be a 200 or a clean 503 (the API's JSON error with a
``Retry-After`` header), which the client honours (up to 3 retries); it reports the 503s, any other
error, and the p50 / p95 latency of the answered requests (retry waits included); (2) a moderate load
(16 clients x 20 captions) measured alone and then again while another client sends 50 KB questions
(``--attack-rate`` per second, 10 by default): the time each 50 KB question takes to be refused (target
< 100 ms) and the p95 of the others in both phases, side by side.

Measured with ``--overload`` on the 2-core development machine (load average 1-2 before the runs), three
runs, shipped tiny base, 32 new tokens, batches of up to 32 (``--batch-size``) and the server's default
limits otherwise (64 requests in progress, 64 prompts queued): the flood of 256 x 4 gave 0 errors other
than clean 503s with ``Retry-After`` in every run (763-870 of 1,024 requests answered, the rest gave up after
three clean 503s; p50 0.78-1.25 s, p95 3.8-5.6 s, retry waits included); a 50 KB question was refused (400)
in 5.6-7.4 ms (median) and at most 39-56 ms, and the other clients' p95 was 0.32-0.55 s alone against
0.30-0.35 s under the attack: no change beyond the noise.

Usage: python benchmarks/serve_load.py [--clients 32] [--captions 20] [--max-new-tokens 32] [--rounds 1]
    [--batch-size 32] [--max-wait-ms 10] [--timeout 600]
       python benchmarks/serve_load.py --overload [--flood-clients 256] [--flood-captions 4]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from repic.concepts.database import load_database
from repic.serve.defaults import copy_database, shipped_concepts_path

EXAMPLES = shipped_concepts_path().parent / "examples"
TARGET_RATIO = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path, batch_size: int, max_wait_ms: float, max_new_tokens: int) -> tuple[subprocess.Popen, str, Path]:
    database = folder / "concepts" / "database.json"
    copy_database(shipped_concepts_path(), database)
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "repic.cli", "serve", "tiny-base", "--database", str(database), "--host", "127.0.0.1",
         "--port", str(port), "--max-batch-size", str(batch_size), "--max-wait-ms", str(max_wait_ms),
         "--max-new-tokens", str(max_new_tokens), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {(folder / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process, url, database
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


def tile(number: int) -> bytes:
    """A reference image of its own for each added concept (a distinct colour)."""
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), ((number * 47) % 256, (number * 89) % 256, (number * 131) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


def load(url: str, clients: int, captions: int, timeout: float) -> dict:
    photos = [(EXAMPLES / name).read_bytes() for name in sorted(os.listdir(EXAMPLES))]
    tags = [concept["tag"] for concept in httpx.get(url + "/v1/concepts").json()["concepts"]]
    latencies: list[float] = []
    errors: list[str] = []
    added: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            for step in range(captions):
                if time.monotonic() > deadline:
                    with lock:
                        errors.append("time limit reached")
                    return
                if step == captions // 2:
                    tag = f"load{number}"
                    try:
                        response = http.post("/v1/concepts", data={"tag": tag, "category": "block"},
                                             files=[("images", (f"{tag}.png", tile(number), "image/png"))])
                        ok = response.status_code == 201
                    except httpx.HTTPError as exc:
                        ok, response = False, exc
                    with lock:
                        (added.append(f"<{tag}>") if ok else errors.append(f"add {tag}: {response}"))
                shown = ",".join(tags[(number + step + k) % len(tags)] for k in range(1 + step % 2))
                started = time.perf_counter()
                try:
                    response = http.post("/v1/caption", data={"mode": "given", "concepts": shown},
                                         files={"image": ("photo.png", photos[(number + step) % len(photos)], "image/png")})
                    ok = response.status_code == 200 and bool(response.json().get("caption") is not None)
                except httpx.HTTPError as exc:
                    ok, response = False, exc
                with lock:
                    (latencies.append(time.perf_counter() - started) if ok else errors.append(str(response)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies), "errors": len(errors), "first_errors": errors[:3], "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_s": round(ordered[len(ordered) // 2], 3) if ordered else None,
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3) if ordered else None,
        "added": added,
    }


def run_one(batch_size: int, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="repic-load-") as folder:
        process, url, database = start_server(Path(folder), batch_size, args.max_wait_ms, args.max_new_tokens)
        try:
            httpx.post(url + "/v1/caption", data={"mode": "given", "concepts": "dana"}, timeout=60,
                       files={"image": ("w.png", (EXAMPLES / "dana.png").read_bytes(), "image/png")})  # warm-up
            before = httpx.get(url + "/healthz").json()["batching"]
            result = load(url, args.clients, args.captions, args.timeout)
            after = httpx.get(url + "/healthz").json()["batching"]
            listed = {c["tag"] for c in httpx.get(url + "/v1/concepts").json()["concepts"]}
        finally:
            process.terminate()
            process.wait(30)
        on_disk = load_database(database)
        batches = after["batches"] - before["batches"]
        result.update(
            max_batch_size=batch_size,
            mean_batch=round((after["prompts"] - before["prompts"]) / batches, 2) if batches else None,
            largest_batch=after["largest_batch"],
            concepts_intact=set(result["added"]) <= listed and all(tag in on_disk for tag in result["added"])
            and not on_disk.validate(),
            added=len(result.pop("added")),
        )
        return result


def percentile(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3) if ordered else None


def caption_with_retries(http: httpx.Client, photo: bytes, question: str | None = None, retries: int = 3) -> dict:
    """One caption request, honouring 503 + Retry-After up to ``retries`` times: its outcome and latency."""
    data = {"mode": "given", "concepts": "dana"}
    if question is not None:
        data["question"] = question
    outcome = {"clean_503": 0, "error": None, "seconds": None, "status": None}
    started = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            response = http.post("/v1/caption", data=data, files={"image": ("p.png", photo, "image/png")})
        except httpx.HTTPError as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            return outcome
        outcome["status"] = response.status_code
        if response.status_code == 503:
            clean = "retry-after" in response.headers and response.json().get("error", {}).get("code") == 503
            if not clean:
                outcome["error"] = f"503 without Retry-After: {response.text[:200]}"
                return outcome
            outcome["clean_503"] += 1
            if attempt < retries:
                time.sleep(min(float(response.headers["retry-after"]), 5.0))
                continue
            return outcome
        if response.status_code not in (200, 400):
            outcome["error"] = f"{response.status_code}: {response.text[:200]}"
        outcome["seconds"] = time.perf_counter() - started
        return outcome
    return outcome


def run_clients(url: str, clients: int, per_client: int, photo: bytes, timeout: float) -> list[dict]:
    outcomes: list[dict] = []
    lock = threading.Lock()

    def client(_: int) -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            for _ in range(per_client):
                result = caption_with_retries(http, photo)
                with lock:
                    outcomes.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def overload(args) -> dict:
    """The flood and the hostile-question scenarios against one server with the default limits."""
    photo = (EXAMPLES / "dana.png").read_bytes()
    with tempfile.TemporaryDirectory(prefix="repic-overload-") as folder:
        process, url, _ = start_server(Path(folder), args.batch_size, args.max_wait_ms, args.max_new_tokens)
        try:
            with httpx.Client(base_url=url, timeout=120) as http:
                caption_with_retries(http, photo)  # warm-up
            started = time.perf_counter()
            flood = run_clients(url, args.flood_clients, args.flood_captions, photo, args.timeout)
            flood_seconds = time.perf_counter() - started
            answered = [o["seconds"] for o in flood if o["status"] == 200]
            calm = run_clients(url, 16, 20, photo, args.timeout)
            refusals: list[float] = []
            statuses: list[int] = []
            stop = threading.Event()

            def hostile() -> None:
                with httpx.Client(base_url=url, timeout=args.timeout) as http:
                    while not stop.wait(1 / args.attack_rate):
                        began = time.perf_counter()
                        response = http.post("/v1/caption", data={"mode": "given", "concepts": "dana",
                                                                  "question": "x" * 50_000},
                                             files={"image": ("p.png", photo, "image/png")})
                        refusals.append(time.perf_counter() - began)
                        statuses.append(response.status_code)

            attacker = threading.Thread(target=hostile)
            attacker.start()
            attacked = run_clients(url, 16, 20, photo, args.timeout)
            stop.set()
            attacker.join()
            health = httpx.get(url + "/healthz").json()
        finally:
            process.terminate()
            process.wait(30)
    return {
        "flood": {
            "clients": args.flood_clients, "captions_per_client": args.flood_captions,
            "answered": len(answered), "clean_503_seen": sum(o["clean_503"] for o in flood),
            "gave_up_after_503s": sum(1 for o in flood if o["status"] == 503),
            "other_errors": sum(1 for o in flood if o["error"]), "first_errors": [o["error"] for o in flood
                                                                                   if o["error"]][:3],
            "p50_s": percentile(answered, 0.5), "p95_s": percentile(answered, 0.95),
            "seconds": round(flood_seconds, 2), "largest_batch": health["batching"]["largest_batch"],
        },
        "huge_question": {
            "refusals": len(refusals), "statuses": sorted(set(statuses)),
            "refusal_median_ms": round(1000 * statistics.median(refusals), 1) if refusals else None,
            "refusal_max_ms": round(1000 * max(refusals), 1) if refusals else None,
            "others_p95_alone_s": percentile([o["seconds"] for o in calm if o["seconds"]], 0.95),
            "others_p95_under_attack_s": percentile([o["seconds"] for o in attacked if o["seconds"]], 0.95),
            "others_errors": sum(1 for o in calm + attacked if o["error"]),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overload", action="store_true", help="Run the flood and hostile-question scenarios.")
    parser.add_argument("--flood-clients", type=int, default=256)
    parser.add_argument("--flood-captions", type=int, default=4)
    parser.add_argument("--attack-rate", type=float, default=10.0,
                        help="50 KB questions per second the hostile client sends (one connection).")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--captions", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds a server's load may take in all.")
    args = parser.parse_args()
    if args.overload:
        print(json.dumps({"scenario": "overload", **overload(args)}), flush=True)
        return
    runs: dict[str, list[dict]] = {"batched": [], "one_at_a_time": []}
    for round_number in range(args.rounds):
        for name, size in (("batched", args.batch_size), ("one_at_a_time", 1)):
            result = run_one(size, args)
            runs[name].append(result)
            print(json.dumps({"round": round_number + 1, "server": name, **result}), flush=True)
    batched = statistics.median(r["requests_per_s"] for r in runs["batched"])
    single = statistics.median(r["requests_per_s"] for r in runs["one_at_a_time"])
    ratio = batched / single if single else None
    all_runs = runs["batched"] + runs["one_at_a_time"]
    errors = sum(r["errors"] for r in all_runs)
    intact = all(r["concepts_intact"] for r in all_runs)
    print(json.dumps({
        "summary": True, "clients": args.clients, "captions_per_client": args.captions, "rounds": args.rounds,
        "batched_requests_per_s": batched, "one_at_a_time_requests_per_s": single,
        "ratio": round(ratio, 2) if ratio else None, "errors": errors, "concepts_intact": intact,
        "meets_target": bool(ratio and ratio >= TARGET_RATIO and errors == 0 and intact),
    }), flush=True)


if __name__ == "__main__":
    main()
