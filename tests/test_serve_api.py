"""``repic serve`` as a real uvicorn process on 127.0.0.1: every endpoint, every refusal, the OpenAI client."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from serving import EXAMPLES, Server, api_error, copy_shipped_database, example_photo, free_port, png_bytes  # noqa: E402

KEY = "test-key"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    database = copy_shipped_database(folder)
    root = folder / "photos"
    root.mkdir()
    (root / "dana.png").write_bytes((EXAMPLES / "dana.png").read_bytes())
    (folder / "secret.png").write_bytes((EXAMPLES / "dana.png").read_bytes())
    running = Server(
        ["serve", "--database", database, "--api-key", KEY, "--allowed-root", root, "--max-new-tokens", "24",
         "--max-upload-mb", "0.1", "--max-image-pixels", "1000000"],
        free_port(), folder / "server.log",
    )
    running.database, running.folder = database, folder
    yield running
    running.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
        yield http


def test_health_and_docs_are_open(server):
    health = httpx.get(server.url + "/healthz").json()
    assert health["status"] == "ok" and health["concepts"] == 16
    assert health["model"]["source"] == "tiny-repic" and health["model"]["box_style"] == "list"
    assert health["batching"]["max_batch_size"] == 16
    assert "/v1/chat/completions" in httpx.get(server.url + "/openapi.json").json()["paths"]
    assert httpx.get(server.url + "/docs").status_code == 200


def test_api_key_is_required(server):
    assert "API key" in api_error(httpx.get(server.url + "/v1/concepts"), 401)
    wrong = httpx.get(server.url + "/v1/concepts", headers={"X-API-Key": "nope"})
    assert "wrong" in api_error(wrong, 401)
    assert httpx.get(server.url + "/v1/concepts", headers={"X-API-Key": KEY}).status_code == 200


def test_concepts_list_get_and_unknown(client):
    listed = client.get("/v1/concepts").json()["concepts"]
    assert len(listed) == 16 and listed[0]["tag"] == "<dana>"
    assert client.get("/v1/concepts/dana").json()["category"] == "cat"
    image = client.get("/v1/concepts/dana/images/1")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    message = api_error(client.get("/v1/concepts/danna"), 404)
    assert "<danna>" in message and "did you mean <dana>" in message
    assert "1 to 2" in api_error(client.get("/v1/concepts/dana/images/3"), 404)


def test_create_update_delete_concept(client, server):
    files = [("images", example_photo()), ("images", ("second.png", png_bytes(Image.new("RGB", (56, 56), "red")), "image/png"))]
    created = client.post("/v1/concepts", data={"tag": "mimi", "category": "cat", "info": "my cat"}, files=files)
    assert created.status_code == 201, created.text
    assert created.json()["tag"] == "<mimi>" and len(created.json()["images"]) == 2
    on_disk = json.loads(server.database.read_text())["concept_dict"]["<mimi>"]
    assert on_disk["info"] == "my cat" and (server.database.parent / on_disk["image"]).is_file()

    again = client.post("/v1/concepts", data={"tag": "<mimi>", "category": "cat"}, files=[("images", example_photo())])
    assert "already in the database" in api_error(again, 409)
    assert client.patch("/v1/concepts/mimi", data={"info": "my old cat"}).json()["info"] == "my old cat"
    assert "category" in api_error(client.patch("/v1/concepts/mimi", data={"category": " "}), 400)
    old_files = [server.database.parent / p for p in on_disk["images"]]
    replaced = client.patch("/v1/concepts/mimi", files=[("images", example_photo("fudu_dape.png"))])
    assert replaced.status_code == 200 and len(replaced.json()["images"]) == 1
    assert replaced.json()["info"] == "my old cat" and not any(path.exists() for path in old_files)
    stored = Image.open(io.BytesIO(client.get("/v1/concepts/mimi/images/1").content)).convert("RGB")
    assert np.array_equal(np.asarray(stored), np.asarray(Image.open(EXAMPLES / "fudu_dape.png").convert("RGB")))
    assert client.delete("/v1/concepts/mimi").json() == {"deleted": "<mimi>"}
    api_error(client.get("/v1/concepts/mimi"), 404)
    api_error(client.delete("/v1/concepts/mimi"), 404)
    assert "<mimi>" not in json.loads(server.database.read_text())["concept_dict"]


def test_bad_concept_inputs(client):
    text = ("notes.txt", b"not an image at all", "text/plain")
    assert "does not decode as an image" in api_error(
        client.post("/v1/concepts", data={"tag": "bad", "category": "cat"}, files=[("images", text)]), 415)
    assert "a concept name is 1 to 64 characters" in api_error(
        client.post("/v1/concepts", data={"tag": " ", "category": "cat"}, files=[("images", example_photo())]), 400)
    missing = api_error(client.post("/v1/concepts", data={"tag": "x"}, files=[("images", example_photo())]), 422)
    assert "category" in missing
    assert "bad" not in {c["tag"] for c in client.get("/v1/concepts").json()["concepts"]}


def test_caption_by_retrieval_and_given(client):
    found = client.post("/v1/caption", files={"image": example_photo()}, data={"top_k": "2"})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["mode"] == "retrieve" and len(body["retrieved"]) == 2 and body["caption"]
    assert body["retrieved"][0]["tag"] == "<dana>" and 0 < body["retrieved"][0]["score"] <= 1
    assert all(r["reference"] in (1, 2) for r in body["retrieved"])  # shipped concepts have two references
    assert body["concepts_shown"] == [r["tag"] for r in body["retrieved"]]
    assert set(body["timings"]) == {"retrieval_s", "generation_s", "total_s"}
    assert body["new_tokens"] <= 24

    given = client.post("/v1/caption", files={"image": example_photo()}, data={"mode": "given", "concepts": "dana,dape"})
    assert given.json()["concepts_shown"] == ["<dana>", "<dape>"] and given.json()["retrieved"] == []
    assert "concepts" in api_error(client.post("/v1/caption", files={"image": example_photo()}, data={"mode": "given"}), 400)
    assert "<nope>" in api_error(
        client.post("/v1/caption", files={"image": example_photo()}, data={"mode": "given", "concepts": "nope"}), 404)
    assert "'retrieve'" in api_error(client.post("/v1/caption", files={"image": example_photo()}, data={"mode": "x"}), 400)
    assert "between 1 and 512" in api_error(
        client.post("/v1/caption", files={"image": example_photo()}, data={"max_new_tokens": "9999"}), 400)


def test_caption_from_a_path_inside_the_root_only(client):
    assert client.post("/v1/caption", data={"path": "dana.png"}).status_code == 200
    assert "outside the allowed root" in api_error(client.post("/v1/caption", data={"path": "../secret.png"}), 403)
    assert "outside the allowed root" in api_error(client.post("/v1/caption", data={"path": "/etc/passwd"}), 403)
    assert "no file" in api_error(client.post("/v1/caption", data={"path": "missing.png"}), 404)
    both = client.post("/v1/caption", data={"path": "dana.png"}, files={"image": example_photo()})
    assert "exactly one" in api_error(both, 400)


def test_oversized_and_non_image_uploads(client):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    big = ("noise.png", png_bytes(noise), "image/png")
    assert "larger than the limit" in api_error(client.post("/v1/caption", files={"image": big}), 413)
    wide = ("wide.png", png_bytes(Image.new("RGB", (1200, 1000), "blue")), "image/png")
    assert "1200 x 1000 pixels" in api_error(client.post("/v1/caption", files={"image": wide}), 413)
    assert "PNG, JPEG" in api_error(client.post("/v1/caption", files={"image": ("a.png", b"GIF8 nope", "image/png")}), 415)


def test_recognize_and_locate(client):
    said = client.post("/v1/recognize", files={"image": example_photo()}, data={"concept": "dana"}).json()
    assert said["concept"] == "<dana>" and said["answer"] in ("yes", "no", None)
    assert said["present"] == (None if said["answer"] is None else said["answer"] == "yes")
    box = client.post("/v1/locate", files={"image": example_photo()}, data={"concept": "<dana>"}).json()
    assert box["concept"] == "<dana>" and "raw" in box
    # the shipped RePIC model is asked in the list style it was trained with, and answers a box
    assert len(box["box"]) == 4 and all(0 <= v <= 112 for v in box["box"]), box["raw"]
    api_error(client.post("/v1/recognize", files={"image": example_photo()}, data={"concept": "nope"}), 404)


def test_unknown_route_is_json(client):
    assert "no such route" in api_error(client.get("/v1/nothing"), 404)


def test_openai_client_chat_completions(server):
    llm = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    data_url = "data:image/png;base64," + base64.b64encode((EXAMPLES / "dana.png").read_bytes()).decode()
    reply = llm.chat.completions.create(
        model="any-name-works", max_tokens=12,
        messages=[{"role": "system", "content": "You describe images."},
                  {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                               {"type": "text", "text": "Describe the image."}]}],
    )
    assert reply.model == "any-name-works" and reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length") and 1 <= reply.usage.completion_tokens <= 12
    text_only = llm.chat.completions.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "Hello"}])
    assert text_only.choices[0].message.content is not None
    with pytest.raises(openai.BadRequestError, match="streaming is not supported"):
        llm.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="not fetched"):
        llm.chat.completions.create(model="m", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}])


def test_concurrent_creates_lose_nothing(client, server):
    def create(number: int) -> int:
        tile = Image.new("RGB", (56, 56), (number * 30 % 256, 90, 200 - number * 20))
        response = client.post("/v1/concepts", data={"tag": f"c{number}", "category": "block"},
                               files=[("images", (f"{number}.png", png_bytes(tile), "image/png"))])
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(create, range(8)))
    assert codes == [201] * 8
    saved = json.loads(server.database.read_text())["concept_dict"]
    assert {f"<c{n}>" for n in range(8)} <= set(saved)
    health = httpx.get(server.url + "/healthz").json()
    assert health["concepts"] == len(saved)


def test_openai_client_personalized_captions(server):
    llm = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    data_url = "data:image/png;base64," + base64.b64encode((EXAMPLES / "fudu_dape.png").read_bytes()).decode()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                             {"type": "text", "text": "Give a personal caption of the image."}]}]
    given = llm.chat.completions.create(model="m", max_tokens=16, messages=messages,
                                        extra_body={"repic": {"concepts": ["<fudu>", "dape"]}})
    extra = given.model_extra["repic"]
    assert extra["mode"] == "given" and extra["concepts_shown"] == ["<fudu>", "<dape>"] and extra["retrieved"] == []
    assert given.choices[0].message.content and set(extra["names"]) <= {c["tag"] for c in _listed(server)}
    found = llm.chat.completions.create(model="m", max_tokens=16, messages=messages,
                                        extra_body={"repic": {"mode": "retrieve", "top_k": 3}})
    assert len(found.model_extra["repic"]["retrieved"]) == 3
    with pytest.raises(openai.BadRequestError, match="unknown keys"):
        llm.chat.completions.create(model="m", messages=messages, extra_body={"repic": {"k": 2}})
    with pytest.raises(openai.BadRequestError, match="needs the query image"):
        llm.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}],
                                    extra_body={"repic": {"mode": "retrieve"}})
    with pytest.raises(openai.NotFoundError, match="<nobody>"):
        llm.chat.completions.create(model="m", messages=messages, extra_body={"repic": {"concepts": ["nobody"]}})


def _listed(server):
    return httpx.get(server.url + "/v1/concepts", headers={"X-API-Key": KEY}).json()["concepts"]
