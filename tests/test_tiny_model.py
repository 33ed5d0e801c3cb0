"""The built-in tiny model: its tokenizer, chat template, processor, save/load round trip and generation.

The model is built once per module from a small caption corpus written here; every check goes through the
``transformers`` Auto classes or ``load_policy``, the path Qwen2.5-VL-7B takes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from repic.errors import RepicError
from repic.models import load_policy
from repic.prompts import DEFAULT_SYSTEM_PROMPT
from repic.shipped import shipped_base_path
from repic.world.tiny import TinyModelConfig, build_tiny_model
from repic.world.tokenizer import (
    CHAT_TEMPLATE,
    NAME_SYLLABLES,
    TINY_NAME_PATTERN,
    check_name_tokenization,
    train_tiny_tokenizer,
)

TRAIN_NAMES = ["<bako>", "<tumi>", "<lesa>", "<pino>", "<doru>", "<kefa>"]
HELD_OUT_NAMES = ["<zuzu>", "<vohe>", "<mibo>"]  # "zu", "vo", "he" never occur in the corpus
CATEGORIES = ["dog", "cat", "mug", "plant"]


def caption_corpus() -> list[str]:
    lines = []
    for i, name in enumerate(TRAIN_NAMES):
        category = CATEGORIES[i % len(CATEGORIES)]
        lines += [
            f"{name} is a {category} sitting on the table.",
            f"Is {name} in this image? yes",
            f"A photo of {name}, the {category}, next to a window.",
        ]
    return lines * 5


def image(side: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def personalized_prompt(processor, names: list[str], question: str) -> str:
    """RePIC's inference layout: each reference image with its name, then the query image and question."""
    content = []
    for i, name in enumerate(names, start=1):
        content += [{"type": "image"}, {"type": "text", "text": f"{i}. Name: {name}, Info: a pet.\n"}]
    content += [{"type": "image"}, {"type": "text", "text": f"This is the query image. {question}"}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def new_tokens(model, inputs, max_new_tokens: int = 8) -> torch.Tensor:
    """Greedy continuation of ``inputs`` without the prompt."""
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return output[:, inputs["input_ids"].shape[1] :]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", texts=caption_corpus())


@pytest.fixture(scope="module")
def policy(tiny_dir):
    return load_policy(tiny_dir)


def test_config_is_qwen2_5_vl_with_the_tokenizers_special_ids(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert config["model_type"] == "qwen2_5_vl"
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config["vision_start_token_id"] == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert config["text_config"]["vocab_size"] == len(tokenizer)
    # head dim 128 / 4 = 32, rotary half 16 split like Qwen's 16/24/24 of 64 -> 4/6/6
    assert config["text_config"]["rope_parameters"]["mrope_section"] == [4, 6, 6]
    generation = json.loads((tiny_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert generation["pad_token_id"] == tokenizer.convert_tokens_to_ids("<|endoftext|>")


def test_parameter_count_is_the_studys_size(policy):
    # ~0.68M with this corpus's vocabulary: small enough to learn name copying on a CPU
    assert 600_000 < policy.info.parameters["total"] < 1_000_000


@pytest.mark.parametrize(
    ("names", "why"),
    [
        (TRAIN_NAMES, "names seen in the corpus"),
        (HELD_OUT_NAMES, "held-out names made of syllables the corpus never showed"),
        ([f"<{a}{b}>" for a in NAME_SYLLABLES for b in NAME_SYLLABLES], "all 85 x 85 possible names"),
    ],
)
def test_every_name_is_four_tokens_in_any_context(tiny_dir, names, why):
    report = check_name_tokenization(AutoTokenizer.from_pretrained(tiny_dir), names)
    assert report["lengths"] == {4: len(names)}, why
    assert report["consistent"] and report["context_dependent"] == [], why


def test_held_out_name_reuses_syllable_tokens(tiny_dir):
    assert "zu" not in " ".join(caption_corpus())  # so the syllable token was not learned from the corpus
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert tokenizer.tokenize("<zuzu>") == ["<", "zu", "zu", ">"]
    # the closing form "</bako>" is not a name and is not split like one
    assert tokenizer.tokenize("</bako>")[:2] != ["<", "ba"]


def test_name_check_flags_words_that_change_with_context(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    report = check_name_tokenization(tokenizer, ["<bako>", "dog"])
    # "dog" alone has no leading space; inside "This is dog." it becomes the token "Ġdog"
    assert report["context_dependent"] == ["dog"]
    assert report["consistent"] is False
    assert report["tokens"]["<bako>"] == ["<", "ba", "ko", ">"]


def test_name_pattern_matches_only_two_syllable_names():
    assert [
        bool(TINY_NAME_PATTERN.fullmatch(s)) for s in ("<bako>", "<bak>", "<bakoo>", "<Bako>", "bako")
    ] == [
        True,  # consonant-vowel twice
        False,  # ends in a consonant
        False,  # extra vowel
        False,  # upper case
        False,  # no brackets
    ]


def test_chat_template_renders_qwen2_5_vl_layout(tiny_dir):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    images_then_question = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "1. Name: <bako>"},
                {"type": "image"},
                {"type": "text", "text": "Is <bako> here?"},
            ],
        }
    ]
    assert processor.apply_chat_template(images_then_question, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>1. Name: <bako>"
        "<|vision_start|><|image_pad|><|vision_end|>Is <bako> here?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [
        {"role": "system", "content": "You caption."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yes"},
    ]
    # an explicit system turn replaces the default one; string contents render as they are
    assert processor.apply_chat_template(with_system) == (
        "<|im_start|>system\nYou caption.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nyes<|im_end|>\n"
    )


def test_the_shipped_base_keeps_the_chat_template_built_here():
    # the shipped tiny base was trained on this template: its default system turn comes from repic.prompts
    shipped = (shipped_base_path() / "chat_template.jinja").read_text(encoding="utf-8")
    assert shipped.rstrip("\n") == CHAT_TEMPLATE
    assert "'<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n'" in shipped


@pytest.mark.parametrize(
    ("side", "tokens"),
    [
        (56, 4),  # 56x56 -> 4x4 patches of 14 -> 2x2 after merging
        (112, 16),  # 112x112 -> 8x8 patches -> 4x4
        (224, 16),  # over the 112x112 budget: resized down to 112x112
    ],
)
def test_image_processor_budgets(tiny_dir, side, tokens):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])
    inputs = processor(text=[text], images=[[image(side, 0)]], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == tokens


def test_save_load_round_trip_keeps_logits(tiny_dir, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    text = personalized_prompt(processor, ["<bako>"], "Is <bako> in this image?")
    inputs = processor(text=[text], images=[[image(56, 1), image(112, 2)]], return_tensors="pt")
    model.save_pretrained(tmp_path / "copy")
    processor.save_pretrained(tmp_path / "copy")
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "copy")
    reprocessed = AutoProcessor.from_pretrained(tmp_path / "copy")(
        text=[text], images=[[image(56, 1), image(112, 2)]], return_tensors="pt"
    )
    assert torch.equal(inputs["input_ids"], reprocessed["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**reprocessed).logits)


def test_multi_image_greedy_generation_returns_text(policy):
    model, processor = policy.model, policy.processor
    text = personalized_prompt(processor, ["<bako>", "<tumi>"], "Give a caption of the image.")
    inputs = processor(text=[text], images=[[image(56, 1), image(56, 2), image(112, 3)]], return_tensors="pt")
    first, second = new_tokens(model, inputs, 10), new_tokens(model, inputs, 10)
    assert 1 <= first.shape[1] <= 10
    assert torch.equal(first, second)  # greedy decoding is deterministic
    captions = processor.batch_decode(first, skip_special_tokens=True)
    assert len(captions) == 1 and isinstance(captions[0], str)


def test_batched_generation_pads_left_and_matches_one_by_one(policy):
    model, processor = policy.model, policy.processor
    rows = [
        (
            personalized_prompt(processor, ["<bako>", "<tumi>"], "Give a caption."),
            [image(56, 1), image(56, 2), image(112, 3)],
        ),
        (personalized_prompt(processor, [], "Is <lesa> in this image?"), [image(112, 4)]),
    ]
    batch = processor(
        text=[t for t, _ in rows], images=[ims for _, ims in rows], return_tensors="pt", padding=True
    )
    short_row_mask = batch["attention_mask"][1]
    assert short_row_mask[0] == 0 and short_row_mask[-1] == 1  # the shorter prompt is padded on the left
    together = new_tokens(model, batch)
    for row, (text, images) in enumerate(rows):
        single = new_tokens(model, processor(text=[text], images=[images], return_tensors="pt"))
        assert torch.equal(together[row, : single.shape[1]], single[0]), f"row {row} changed when batched"


def test_build_is_reproducible_and_leaves_the_global_rng_alone(tiny_dir, tmp_path):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    again = build_tiny_model(tmp_path / "again", texts=caption_corpus())
    assert torch.equal(torch.rand(1), expected_next)  # building did not consume the caller's random numbers
    assert (again / "tokenizer.json").read_text() == (tiny_dir / "tokenizer.json").read_text()
    first, second = (AutoModelForImageTextToText.from_pretrained(d).state_dict() for d in (tiny_dir, again))
    assert all(torch.equal(first[key], second[key]) for key in first)  # same seed, same weights


def test_build_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "tiny"
    build_tiny_model(out, texts=caption_corpus(), config=TinyModelConfig(seed=1))
    with pytest.raises(RepicError, match="already exists"):
        build_tiny_model(out, texts=caption_corpus())
    build_tiny_model(out, texts=caption_corpus(), config=TinyModelConfig(seed=2), overwrite=True)
    assert json.loads((out / "repic_tiny_config.json").read_text())["seed"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no staging or old folder left behind


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text_hidden_size": 130}, "not divisible by text_heads"),
        ({"text_heads": 4, "text_kv_heads": 3}, "not divisible by text_kv_heads"),
        ({"min_pixels": 100}, "pixel budgets"),  # below one 28x28 token
        ({"min_pixels": 112 * 112 * 4}, "pixel budgets"),  # above max_pixels
        ({"window_size": 14}, "window_size"),
    ],
)
def test_invalid_sizes_are_explained(fields, message):
    with pytest.raises(RepicError, match=message):
        TinyModelConfig(**fields)


def test_tokenizer_needs_text():
    with pytest.raises(RepicError, match="corpus is empty"):
        train_tiny_tokenizer(["", "   "])


def test_cli_builds_and_describes_the_tiny_model(run_cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(caption_corpus()) + "\n", encoding="utf-8")
    built = run_cli("models", "build-tiny", "--out", tmp_path / "tiny", "--corpus", corpus)
    assert built.exit_code == 0, built.stderr
    assert "built the tiny model" in built.stdout

    shown = run_cli("models", "info", tmp_path / "tiny")
    assert shown.exit_code == 0, shown.stderr
    assert "Qwen2_5_VLForConditionalGeneration" in shown.stdout
    assert "multi-image chat template  yes" in shown.stdout

    described = json.loads(run_cli("models", "info", tmp_path / "tiny", "--json").stdout)
    loaded = load_policy(tmp_path / "tiny")
    assert described["parameters"]["total"] == loaded.info.parameters["total"]
    language_linears = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert described["lora_targets"] == language_linears


def test_cli_explains_a_missing_corpus(run_cli, tmp_path):
    result = run_cli("models", "build-tiny", "--out", tmp_path / "tiny", "--corpus", tmp_path / "nope.txt")
    assert result.exit_code == 2
    assert "corpus file not found" in result.stderr
    assert not (tmp_path / "tiny").exists()
