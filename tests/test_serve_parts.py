"""The serving parts on their own: the batching queue, upload checks, path confinement, the defaults, the
concept store under concurrent writers, and ``repic serve``'s refusals before anything loads."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from repic.errors import RepicError
from repic.inference.generate import Generated, GenerationSettings, PromptInput
from repic.serve.batcher import BatchQueue, QueueFull
from repic.serve.defaults import (
    DEFAULT_DATABASE,
    copy_database,
    default_database,
    default_model,
    known_models,
    shipped_concepts_path,
)
from repic.serve.store import ConceptStore
from repic.serve.uploads import ImageLimits, ServiceError, confined_path, decode_data_url, decode_image
from repic.shipped import shipped_base_path, shipped_repic_path


def _png(size=(8, 8), colour="red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _prompt(text: str) -> PromptInput:
    return PromptInput([{"role": "user", "content": [{"type": "text", "text": text}]}], [])


def test_batches_gather_waiting_prompts_and_split_by_settings():
    seen: list[tuple[int, int]] = []
    started, release = threading.Event(), threading.Event()

    def run(prompts, settings, should_stop):
        started.set()
        release.wait(5)  # hold the first batch until everything else is queued
        seen.append((len(prompts), settings.max_new_tokens))
        return [Generated(p.messages[0]["content"][0]["text"].upper(), 1, True) for p in prompts]

    queue = BatchQueue(run, max_batch_size=4, max_wait_s=0.0)
    short, long = GenerationSettings(max_new_tokens=4), GenerationSettings(max_new_tokens=8)
    first = queue.submit(_prompt("a"), short).future
    assert started.wait(5)  # the worker has taken "a" alone and waits in run()
    futures = [queue.submit(_prompt(t), short if i % 2 == 0 else long).future for i, t in enumerate("bcdefg")]
    release.set()
    assert first.result(5).text == "A"
    assert [f.result(5).text for f in futures] == list("BCDEFG")
    # "a" alone; then up to 4 at a time, each gathered batch split by settings in arrival order
    assert seen[0] == (1, 4) and sum(n for n, _ in seen) == 7 and all(n <= 4 for n, _ in seen)
    assert queue.stats.batches == len(seen) and queue.stats.prompts == 7
    queue.close()


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_failing_prompt_fails_only_its_own_request(batch_size):
    """A prompt that breaks the model's call fails alone: its batch is retried prompt by prompt."""
    gate, calls = threading.Event(), []

    def run(prompts, settings, should_stop):
        gate.wait(5)  # let every prompt queue up first, so they meet in one batch
        calls.append(len(prompts))
        if any(p.messages[0]["content"][0]["text"] == "boom" for p in prompts):
            raise RuntimeError("the model broke")
        return [Generated(p.messages[0]["content"][0]["text"], 1, True) for p in prompts]

    queue = BatchQueue(run, max_batch_size=batch_size, max_wait_s=0.05)
    tickets = [queue.submit(_prompt(text), GenerationSettings()) for text in ("one", "boom", "two", "three")]
    gate.set()
    with pytest.raises(RuntimeError, match="broke"):
        tickets[1].future.result(5)
    assert [tickets[i].future.result(5).text for i in (0, 2, 3)] == ["one", "two", "three"]
    if batch_size > 1:
        assert calls[0] > 1 and sorted(calls[1:]) == [1] * (len(calls) - 1)  # the batch, then each alone
    queue.close()


def test_the_queue_is_bounded_and_says_when_to_retry():
    gate = threading.Event()

    def run(prompts, settings, should_stop):
        gate.wait(5)
        return [Generated("ok", 1, True) for _ in prompts]

    queue = BatchQueue(run, max_batch_size=1, max_wait_s=0.0, max_queue=2)
    first = queue.submit(_prompt("a"), GenerationSettings())
    deadline = time.monotonic() + 5
    while queue.waiting and time.monotonic() < deadline:  # the worker took "a" and holds it in run()
        time.sleep(0.01)
    waiting = [queue.submit(_prompt(t), GenerationSettings()) for t in "bc"]
    # no batch timed yet: 1 s a batch is assumed, and 2 waiting at 1 a batch plus the running one is 3 s
    with pytest.raises(QueueFull, match="2 requests are waiting already; retry in 3 s"):
        queue.submit(_prompt("d"), GenerationSettings())
    gate.set()
    assert [t.future.result(5).text for t in [first, *waiting]] == ["ok"] * 3
    assert queue.submit(_prompt("e"), GenerationSettings()).future.result(5).text == "ok"  # room again
    queue.close()


def test_an_abandoned_prompt_is_dropped_and_its_running_batch_stops():
    started, stops = threading.Event(), []

    def run(prompts, settings, should_stop):
        started.set()
        deadline = time.monotonic() + 5
        while not should_stop() and time.monotonic() < deadline:  # generation checks after each token
            time.sleep(0.01)
        stops.append(should_stop())
        return [Generated("cut", 1, False) for _ in prompts]

    queue = BatchQueue(run, max_batch_size=1, max_wait_s=0.0)
    running = queue.submit(_prompt("a"), GenerationSettings())
    assert started.wait(5)
    queued = queue.submit(_prompt("b"), GenerationSettings())
    queued.abandon()  # still waiting: never run
    running.abandon()  # running alone: its generation stops
    deadline = time.monotonic() + 5
    while not stops and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.close()
    assert stops == [True] and queued.future.cancelled()


def test_uploads_are_checked_by_decoding():
    assert decode_image(_png()).size == (8, 8)
    with pytest.raises(ServiceError, match="does not decode") as caught:
        decode_image(b"%PDF-1.4 not a picture")
    assert caught.value.status == 415
    with pytest.raises(ServiceError, match="larger than the limit") as caught:
        decode_image(_png(), ImageLimits(max_bytes=10))
    assert caught.value.status == 413
    with pytest.raises(ServiceError, match="64 x 64 pixels"):
        decode_image(_png((64, 64)), ImageLimits(max_pixels=1000))
    url = "data:image/png;base64," + base64.b64encode(_png()).decode()
    assert decode_data_url(url).size == (8, 8)
    for bad, message in [("https://example.com/a.png", "not fetched"), ("data:image/png,abc", "base64"),
                         ("data:image/png;base64,@@@", "not valid base64")]:
        with pytest.raises(ServiceError, match=message):
            decode_data_url(bad)


def test_paths_stay_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(_png())
    (tmp_path / "outside.png").write_bytes(_png())
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    assert confined_path("sub/a.png", root) == (root / "sub" / "a.png").resolve()
    for escape in ("../outside.png", "sub/../../outside.png", str(tmp_path / "outside.png"), "link.png"):
        with pytest.raises(ServiceError, match="outside the allowed root") as caught:
            confined_path(escape, root)
        assert caught.value.status == 403
    with pytest.raises(ServiceError, match="paths are off"):
        confined_path("sub/a.png", None)


def test_defaults_prefer_the_latest_demo(tmp_path):
    assert default_model(cwd=tmp_path).path == shipped_repic_path()  # names concepts out of the box
    made = default_database(tmp_path)
    assert made.path == tmp_path / DEFAULT_DATABASE and "shipped" in made.origin
    assert len(json.loads(made.path.read_text())["concept_dict"]) == 16
    assert default_database(tmp_path).origin == "the default concept database"  # reused, not copied again

    demo = tmp_path / "with-demo"
    for seed in (2, 10, 1):  # a run over several training seeds: the lowest seed's model is the default
        (demo / f"repic-demo/runs/repic-s{seed}/final").mkdir(parents=True)
        (demo / f"repic-demo/runs/repic-s{seed}/final/config.json").write_text("{}")
    world = demo / "repic-demo/world/database.json"
    copy_database(shipped_concepts_path(), world)
    assert default_model(cwd=demo).path == demo / "repic-demo/runs/repic-s1/final"
    assert default_model(run=demo / "repic-demo").path == demo / "repic-demo/runs/repic-s1/final"  # --run DIR
    with pytest.raises(RepicError, match="holds no finished RePIC model"):
        default_model(run=tmp_path)
    offered = known_models(run=demo / "repic-demo")  # the app's picker, with --allow-model-loading
    assert offered[:2] == [str(shipped_repic_path()), str(shipped_base_path())]
    assert str(demo / "repic-demo/runs/repic-s10/final") in offered
    copied = default_database(demo)
    assert "demo's world" in copied.origin and copied.path == demo / DEFAULT_DATABASE
    assert json.loads(copied.path.read_text())["concept_dict"].keys() == json.loads(world.read_text())["concept_dict"].keys()


def test_concurrent_store_writers_lose_nothing(tmp_path):
    path = tmp_path / "db" / "database.json"
    copy_database(shipped_concepts_path(), path)
    stores = [ConceptStore(path), ConceptStore(path)]  # two services on one file
    errors = []

    def add(number: int) -> None:
        try:
            stores[number % 2].add(f"n{number}", category="block", images=[Image.new("RGB", (8, 8), (number, 0, 0))])
        except Exception as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saved = json.loads(path.read_text())["concept_dict"]
    assert {f"<n{n}>" for n in range(12)} <= set(saved) and len(saved) == 28
    assert len(stores[0].database()) == len(stores[1].database()) == 28  # both see the other's edits
    removed = stores[1].remove("n3")
    assert not any(image.exists() for image in removed.images) and "<n3>" not in stores[0].database()


def test_serve_refuses_bad_setup_before_loading(run_cli, tmp_path):
    missing = run_cli("serve", "--database", tmp_path / "none.json", "--port", "1")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr and "repic db init" in missing.stderr
    root = run_cli("serve", "--allowed-root", tmp_path / "nowhere", "--port", "1")
    assert root.exit_code == 2 and "is not a folder" in root.stderr
    numbers = run_cli("serve", "--max-batch-size", "0", "--max-new-tokens", "9999", "--port", "1")
    assert numbers.exit_code == 2 and "batch size must be at least 1 (got 0)" in numbers.stderr
    assert "between 1 and 512 (got 9999)" in numbers.stderr
    assert "Traceback" not in missing.stderr + root.stderr + numbers.stderr


def test_the_shipped_concepts_validate():
    from repic.concepts.database import load_database

    database = load_database(shipped_concepts_path())
    assert len(database) == 16 and not database.validate()
    assert sorted(p.name for p in (shipped_concepts_path().parent / "examples").iterdir()) == [
        "dana.png", "fudu_dana_dape_fisi.png", "fudu_dape.png"]
    assert Path(shipped_concepts_path()).stat().st_size < 20_000


def test_the_store_reads_and_edits_with_the_database_image_root(tmp_path):
    """``repic serve`` / ``repic app --database-image-root``: relative paths start there, on reads and edits."""
    (tmp_path / "root" / "refs").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 0, 0)).save(tmp_path / "root" / "refs" / "bo.png")
    path = tmp_path / "db" / "database.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"concept_dict": {"<bo>": {
        "name": "bo", "image": "refs/bo.png", "info": "a red block", "category": "block"}}}))
    assert not ConceptStore(path).get("bo").images[0].exists()  # from the database's folder: not there
    store = ConceptStore(path, image_root=tmp_path / "root")
    assert store.get("bo").images == [tmp_path / "root" / "refs" / "bo.png"]
    store.update("bo", info="a bright red block")
    saved = json.loads(path.read_text())["concept_dict"]["<bo>"]
    assert saved["image"] == "refs/bo.png" and saved["info"] == "a bright red block"  # the path kept as written
