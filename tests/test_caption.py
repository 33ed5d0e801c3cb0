"""Personalized captioning as a library: batched generation, the captioner's modes, skips and model loading."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from repic.concepts import ConceptDatabase, load_database
from repic.concepts.embed import ColourEmbedder
from repic.concepts.index import open_index
from repic.concepts.retrieve import Retriever
from repic.errors import RepicError
from repic.evaluate import load_predictions
from repic.inference import (
    OFFICIAL_MAX_PIXELS,
    Captioner,
    GenerationSettings,
    PromptInput,
    Query,
    generate_batched,
    load_for_captioning,
    read_eval_file,
    write_outputs,
)
from repic.inference.caption import cap_pixel_budget
from repic.inference.generate import decode_answer, length_order
from repic.prompts import inference_messages
from repic.shipped import shipped_base_path

COLOURS = {"bako": (220, 30, 30), "tumi": (30, 30, 220), "lefa": (30, 200, 30)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model runs fastest on one thread, the more so on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def picture(side: int, seed: int, colour=None) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (side, side), colour or tuple(rng.randrange(256) for _ in range(3)))
    patch = Image.new("RGB", (side // 2, side // 3), tuple(rng.randrange(256) for _ in range(3)))
    image.paste(patch, (rng.randrange(side // 2), rng.randrange(side // 2)))
    return image


@pytest.fixture
def world(tmp_path) -> Path:
    """Three concepts (a database with 56 px references) and four 112 px scenes, the first showing <bako>."""
    db = ConceptDatabase(tmp_path / "eval" / "database.json")
    for number, (name, colour) in enumerate(COLOURS.items()):
        source = tmp_path / "sources" / f"{name}.png"
        source.parent.mkdir(parents=True, exist_ok=True)
        picture(56, number, colour).save(source)
        db.add(_concept(name, source))
    db.save()
    for number in range(4):
        (tmp_path / "scenes").mkdir(exist_ok=True)
        picture(112, 10 + number, COLOURS["bako"] if number == 0 else None).save(tmp_path / "scenes" / f"s{number}.png")
    return tmp_path


def _concept(name: str, image: Path):
    from repic.records import Concept

    return Concept(name, name, "toy", f"a {name} toy", [image])


def prompts(count: int) -> list[PromptInput]:
    """Prompts with 0 to 3 references each (so 1 to 4 images) and two different questions."""
    made = []
    for number in range(count):
        references = [(f"<{name}>", f"a {name} toy") for name in list(COLOURS)[: number % 4]]
        question = "Give a personal caption of the image." if number % 2 else "Describe it."
        images = [picture(56, 100 * number + i) for i in range(len(references))] + [picture(112, number)]
        made.append(PromptInput(inference_messages(references, question), images))
    return made


# ------------------------------------------------------------------------------------------ batching
def test_batched_greedy_answers_equal_one_at_a_time(noisy_policy):
    batch = prompts(7)
    one_by_one = generate_batched(noisy_policy.model, noisy_policy.processor, batch, GenerationSettings(max_new_tokens=20, batch_size=1))
    batched = generate_batched(noisy_policy.model, noisy_policy.processor, batch, GenerationSettings(max_new_tokens=20, batch_size=4))
    assert [(a.text, a.new_tokens) for a in batched] == [(a.text, a.new_tokens) for a in one_by_one]
    assert len({a.text for a in one_by_one}) >= 4  # answers depend on the input: the comparison means something


def test_static_cache_fills_the_last_batch_and_answers_the_same(noisy_policy):
    batch = prompts(4)
    dynamic = generate_batched(noisy_policy.model, noisy_policy.processor, batch, GenerationSettings(max_new_tokens=12, batch_size=4))
    calls = []
    static = generate_batched(
        noisy_policy.model, noisy_policy.processor, batch, GenerationSettings(max_new_tokens=12, batch_size=3, cache="static"),
        on_batch=calls.append,
    )
    assert [a.text for a in static] == [a.text for a in dynamic]
    assert [(c.done, c.batch_prompts) for c in calls] == [(3, 3), (4, 1)]  # the filler rows are not counted


def test_forced_lengths(noisy_policy):
    forced = generate_batched(
        noisy_policy.model, noisy_policy.processor, prompts(2), GenerationSettings(max_new_tokens=6, min_new_tokens=6)
    )
    assert [(a.new_tokens, a.ended) for a in forced] == [(6, False), (6, False)]


def test_answers_end_at_the_first_end_of_sequence_token():
    tokenizer = shipped_policy().processor.tokenizer
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    words = tokenizer("a red cat", add_special_tokens=False)["input_ids"]
    ended = decode_answer([*words, eos, pad, pad], tokenizer, {eos})
    assert (ended.text, ended.new_tokens, ended.ended) == ("a red cat", len(words) + 1, True)  # EOS counts
    cut = decode_answer(words, tokenizer, {eos})  # the budget ran out first
    assert (cut.text, cut.new_tokens, cut.ended) == ("a red cat", len(words), False)


def shipped_policy():
    return load_for_captioning(shipped_base_path(), device="cpu")


def test_prompts_are_ordered_longest_first():
    batch = prompts(4)  # 1, 2, 3, 4 images
    tokenizer = shipped_policy().processor.tokenizer
    assert length_order(["a"] * 4, batch, tokenizer) == [3, 2, 1, 0]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"temperature": 0.0}, "temperature must be a positive finite number"),
        ({"temperature": float("nan")}, "temperature must be a positive finite number"),
        ({"temperature": float("inf")}, "temperature must be a positive finite number"),
        ({"top_p": float("nan")}, r"top_p must be in \(0, 1\]"),
        ({"seed": 2**64}, "seed must be a whole number from 0 to"),
        ({"seed": -1}, "seed must be a whole number from 0 to"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"cache": "paged"}, "cache must be one of auto, dynamic, static"),
        ({"min_new_tokens": 200}, r"min_new_tokens must be in \[0, max_new_tokens\]"),
    ],
)
def test_invalid_generation_settings_are_explained(fields, message):
    with pytest.raises(RepicError, match=message):
        GenerationSettings(**fields)


def test_sampling_is_seeded(noisy_policy):
    settings = GenerationSettings(max_new_tokens=10, do_sample=True, temperature=1.5, seed=3)
    first = generate_batched(noisy_policy.model, noisy_policy.processor, prompts(2), settings)
    again = generate_batched(noisy_policy.model, noisy_policy.processor, prompts(2), settings)
    assert [a.text for a in first] == [a.text for a in again]
    other_seed = generate_batched(noisy_policy.model, noisy_policy.processor, prompts(2), replace(settings, seed=4))
    greedy = generate_batched(noisy_policy.model, noisy_policy.processor, prompts(2), GenerationSettings(max_new_tokens=10))
    assert [a.text for a in other_seed] != [a.text for a in first] != [a.text for a in greedy]  # it does sample


# ------------------------------------------------------------------------------------------ the captioner
def eval_rows(world: Path, rows: list[dict]) -> Path:
    path = world / "eval" / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_skip_retrieval_uses_the_rows_references_and_the_databases_info(world, noisy_policy):
    rows = [
        {"image": "../scenes/s0.png", "task": "ict", "concepts": ["<bako>"], "question": "Q1?",
         "references": ["../sources/bako.png"], "reference_concepts": ["<bako>"]},
        {"image": "../scenes/s1.png", "concepts": ["<tumi>", "<lefa>"]},  # references from the database
    ]
    queries = read_eval_file(eval_rows(world, rows))
    captioner = Captioner(noisy_policy.model, noisy_policy.processor, database=load_database(world / "eval" / "database.json"),
                          settings=GenerationSettings(max_new_tokens=4))
    prepared = [captioner.prepare(query) for query in queries]
    assert [p.mode for p in prepared] == ["skip-retrieval", "skip-retrieval"]
    assert [(tag, path.name) for tag, path in prepared[1].references] == [("<tumi>", "tumi.png"), ("<lefa>", "lefa.png")]
    text = prepared[1].prompt.messages[1]["content"]
    assert text[1]["text"] == "1. Name: <tumi>, Info: a tumi toy"
    # No question in the row: the second row gets the second official question.
    assert text[-1]["text"] == "This is the query image. Give a personal caption of the image."
    assert len(prepared[1].prompt.images) == 3
    run = captioner.run(queries)
    assert [r.query.row for r in run.results] == [1, 2] and not run.skipped
    assert [r.task for r in run.results] == ["ict", "ict_multi"]


def test_retrieval_mode_shows_the_retrieved_concepts(world, noisy_policy):
    db = load_database(world / "eval" / "database.json")
    embedder = ColourEmbedder()
    retriever = Retriever(db, open_index(db, embedder).index, embedder, k=2)
    captioner = Captioner(noisy_policy.model, noisy_policy.processor, retriever=retriever, settings=GenerationSettings(max_new_tokens=4))
    query = Query("--images", 1, world / "scenes" / "s0.png", "s0.png", question="Who is here?")
    run = captioner.run([query])
    result = run.results[0]
    assert result.mode == "retrieval" and result.prompt_concepts[0] == "<bako>"  # the scene is bako's red
    # An image given without its concepts has no truth: retrieval's choice is not recorded as one.
    assert result.concepts == [] and result.official_row()[1] == [] and result.task == "ict_multi"
    assert [found.tag for found in result.retrieved] == result.prompt_concepts
    assert result.to_json()["retrieved"][0]["score"] > result.to_json()["retrieved"][1]["score"]


def test_unusable_query_images_are_skipped_and_the_rest_answered(world, noisy_policy):
    (world / "scenes" / "broken.png").write_bytes(b"not a png")
    db = load_database(world / "eval" / "database.json")
    captioner = Captioner(noisy_policy.model, noisy_policy.processor, database=db, settings=GenerationSettings(max_new_tokens=4))
    images = ["s0.png", "missing.png", "broken.png", "s1.png"]
    queries = [Query("--images", n, world / "scenes" / name, name, concepts=["<bako>"]) for n, name in enumerate(images, 1)]
    run = captioner.run(queries)
    assert [r.query.label for r in run.results] == ["s0.png", "s1.png"]
    reasons = {s.query.label: s.reason for s in run.skipped}
    assert "does not exist" in reasons["missing.png"] and "does not decode as an image" in reasons["broken.png"]


def test_a_query_the_processor_would_refuse_is_skipped_and_the_rest_of_its_batch_answered(world, noisy_policy):
    """An extreme aspect ratio or a chat control token in the question would fail the whole batch inside
    the processor; each is refused for its own query, and the other captions of the run are kept."""
    Image.new("RGB", (4020, 20), (200, 10, 10)).save(world / "scenes" / "thin.png")
    db = load_database(world / "eval" / "database.json")
    settings = GenerationSettings(max_new_tokens=4, batch_size=4)
    captioner = Captioner(noisy_policy.model, noisy_policy.processor, database=db, settings=settings)
    scenes = world / "scenes"
    queries = [
        Query("--images", 1, scenes / "s0.png", "s0.png", concepts=["<bako>"]),
        Query("--images", 2, scenes / "thin.png", "thin.png", concepts=["<bako>"]),
        Query("--images", 3, scenes / "s1.png", "s1.png", question="Who is <|image_pad|> here?", concepts=["<bako>"]),
        Query("--images", 4, scenes / "s2.png", "s2.png", concepts=["<bako>"]),
    ]
    run = captioner.run(queries)
    assert [r.query.label for r in run.results] == ["s0.png", "s2.png"]
    reasons = {s.query.label: s.reason for s in run.skipped}
    assert "aspect ratio of 201, above the limit of 200" in reasons["thin.png"]
    assert "'<|image_pad|>', a control token" in reasons["s1.png"]


def test_captioner_errors_name_the_query(world, noisy_policy):
    query = Query("rows.jsonl", 3, world / "scenes" / "s0.png", "s0.png", concepts=["<nobody>"])
    with pytest.raises(RepicError, match="rows.jsonl, row 3: .*pass --database"):
        Captioner(noisy_policy.model, noisy_policy.processor).run([query])
    db = load_database(world / "eval" / "database.json")
    with pytest.raises(RepicError, match="rows.jsonl, row 3: no concept <nobody>"):
        Captioner(noisy_policy.model, noisy_policy.processor, database=db).run([query])
    unnamed = Query("--images", 1, world / "scenes" / "s0.png", "s0.png")
    with pytest.raises(RepicError, match="retrieval needs a concept database"):
        Captioner(noisy_policy.model, noisy_policy.processor, database=db).run([unnamed])
    db.get("lefa").images[0].unlink()
    with pytest.raises(RepicError, match="lefa.png of <lefa> does not exist"):
        Captioner(noisy_policy.model, noisy_policy.processor, database=db)


def test_oct_and_vlt_rows_are_asked_in_the_training_layout(world, noisy_policy):
    rows = [
        {"image": ["../sources/bako.png", "../scenes/s0.png"], "problem": "<bako> is shown in the first image; "
         "the last image is the query image. Is <bako> in the query image?", "solution": "yes",
         "accu_reward_method": "yes_no"},
        {"image": "../scenes/s1.png", "problem": "Name: <tumi>, Info: x. Where is <tumi>?", "solution": [1, 2, 30, 40],
         "accu_reward_method": "iou", "concepts": ["<tumi>"]},
    ]
    captioner = Captioner(noisy_policy.model, noisy_policy.processor, settings=GenerationSettings(max_new_tokens=4), box_style="list")
    queries = read_eval_file(eval_rows(world, rows))
    oct_prompt, vlt_prompt = (captioner.prepare(query).prompt for query in queries)
    assert len(oct_prompt.images) == 2 and oct_prompt.messages[0]["content"][-1]["text"].endswith(
        "The final answer must be either 'yes' or 'no' with no additional output."
    )
    assert vlt_prompt.messages[0]["content"][-1]["text"].endswith("Return the bounding box as [x1, y1, x2, y2] in pixels of the image.")
    run = captioner.run(queries)
    out = write_outputs(world / "out", run, {"model": "tiny"})
    assert sorted(out) == ["answers.jsonl", "summary.json"]
    scored = load_predictions(out["answers.jsonl"], on_error="fail")
    assert (len(scored.recognition), len(scored.localization)) == (1, 1)
    assert scored.localization[0].box == (1.0, 2.0, 30.0, 40.0)


def test_outputs_are_what_repic_eval_reads(world, noisy_policy):
    db = load_database(world / "eval" / "database.json")
    captioner = Captioner(noisy_policy.model, noisy_policy.processor, database=db, settings=GenerationSettings(max_new_tokens=4))
    queries = [Query("--images", 1, world / "scenes" / "s0.png", "scenes/s0.png", concepts=["<bako>"]),
               Query("--images", 2, world / "scenes" / "gone.png", "scenes/gone.png", concepts=["<bako>"])]
    run = captioner.run(queries)
    written = write_outputs(world / "out", run, {"model": "tiny"})
    official = json.loads(written["captions.json"].read_text())
    assert official == [["scenes/s0.png", ["<bako>"], run.results[0].prediction, queries[0].question]]
    assert load_predictions(written["captions.jsonl"], on_error="fail").captions[0].concepts == ("<bako>",)
    summary = json.loads(written["summary.json"].read_text())
    assert (summary["model"], summary["answered"], summary["skipped"]) == ("tiny", 1, 1)
    assert summary["skipped_queries"][0]["image"] == "scenes/gone.png"


# ------------------------------------------------------------------------------------------ loading
@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on the shipped base with non-zero weights, so it changes the answers."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    folder = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)
    base = AutoModelForImageTextToText.from_pretrained(shipped_base_path())
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config)
    model.save_pretrained(folder)
    return folder


def test_a_lora_adapter_loads_as_base_plus_adapter(adapter):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    loaded = load_for_captioning(adapter, device="cpu")
    assert loaded.info.mode == "lora-merged" and not hasattr(loaded.model, "peft_config")
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(shipped_base_path()), adapter)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(loaded.model(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)
        plain = shipped_policy().model(input_ids=ids).logits
    assert not torch.allclose(loaded.model(input_ids=ids).logits, plain, atol=1e-3)  # the adapter did something


def test_adapter_base_problems_are_explained(adapter, tmp_path):
    config = json.loads((adapter / "adapter_config.json").read_text())
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in adapter.iterdir():
        (moved / file.name).write_bytes(file.read_bytes())
    (moved / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(RepicError, match="cannot load the base model .* for the adapter .* Pass --base"):
        load_for_captioning(moved)
    assert load_for_captioning(moved, base=shipped_base_path(), device="cpu").info.mode == "lora-merged"
    with pytest.raises(RepicError, match="--base is for LoRA adapter folders"):
        load_for_captioning(shipped_base_path(), base=shipped_base_path())
    if not torch.cuda.is_available():
        with pytest.raises(RepicError, match="asks for a GPU, but torch sees none"):
            load_for_captioning(shipped_base_path(), device="cuda")


def test_large_pixel_budgets_are_capped_at_the_official_one():
    from transformers import Qwen2VLImageProcessor

    processor = type("P", (), {"image_processor": Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056)})()
    cap_pixel_budget(processor, OFFICIAL_MAX_PIXELS)
    grid = processor.image_processor(images=[Image.new("RGB", (3000, 2000))], return_tensors="pt")["image_grid_thw"]
    # A 6-megapixel photo: 1,024 x 28 x 28 pixels at most, i.e. at most 1,024 merged tokens (4 patches each);
    # Qwen's resize keeps the aspect: 39 x 26 cells of 28 px = 1,014 tokens.
    assert grid.tolist() == [[1, 52, 78]] and 52 * 78 // 4 == 1014
    tiny = shipped_policy().processor.image_processor.size
    assert (tiny.shortest_edge, tiny.longest_edge) == (56 * 56, 112 * 112)  # a smaller own budget is kept


def test_a_models_trained_box_style_is_read_from_its_run_record(tmp_path):
    from repic.inference.caption import trained_box_style

    assert trained_box_style("tiny-repic") == "list"  # the shipped RePIC model answers boxes as a list
    assert trained_box_style("tiny-base") is None  # never post-trained: no style of its own
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    (final / "repic_run.json").write_text('{"method": "grpo"}')  # a run recorded before the style was
    (tmp_path / "run" / "config.yaml").write_text("data:\n  box_style: list\n")
    assert trained_box_style(final) == "list"
    (final / "repic_run.json").write_text('{"method": "grpo", "box_style": "json"}')
    assert trained_box_style(final) == "json"


def test_caption_job_is_what_repic_caption_does_as_a_library_call(world, tmp_path):
    from repic.inference.job import CaptionJob, caption_job

    job = CaptionJob("tiny-base", tmp_path / "out", images=[world / "scenes" / "s0.png", world / "scenes" / "s1.png"],
                     database=world / "eval" / "database.json", concepts=["bako"],
                     generation=GenerationSettings(max_new_tokens=4))
    outcome = caption_job(job)
    assert [Path(r.query.label).name for r in outcome.run.results] == ["s0.png", "s1.png"]
    assert set(outcome.written) == {"captions.json", "captions.jsonl", "summary.json"}
    rows = json.loads((tmp_path / "out" / "captions.json").read_text())
    assert [row[1] for row in rows] == [["<bako>"], ["<bako>"]]  # the concepts given are the truth
    with pytest.raises(RepicError, match="already holds captions.json"):
        caption_job(job)  # before any model loads
