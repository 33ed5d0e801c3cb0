"""Compare a model with a reference model on a few prompts: logits along the reference's answers, and answers.

``repic.models.merge`` uses this to check a merged LoRA model against base+adapter, but nothing here knows
about adapters: ``reference_outputs(policy, prompts)`` records what the reference model does, and
``compare(policy, references, tolerance)`` measures how far another model is from it.

What it chose and why:

- **Teacher-forced logits on the reference's own answer.** The reference generates greedily; the other
  model then reads the same full sequence (prompt + that answer) and its logits are compared at every
  position that predicts an answer token, plus the last one. This compares the distributions exactly where
  the model is used, where free generation would compare two different sequences after the first
  disagreement. Reported: the largest absolute logit difference, and the positions whose argmax differs.
- **Greedy answers** of the other model must also equal the reference token for token: the visible effect.
- **One prompt at a time**, so no padding enters either model's input and a difference is the models'.
- **A fresh greedy ``GenerationConfig``**, so a checkpoint's sampling defaults (temperature, top-p) never
  make the comparison random.
- **Default prompts** are RePIC's own layouts, so the vision tower, the projector and the multi-image
  chat template are all exercised: RAP captioning with one and two reference images, a yes/no question
  about a reference, a box question on one image, over 112x112 pictures drawn in memory (a red ball, a
  striped blue box), small enough for any image processor's pixel budget and cheap on a 7B model.
  ``load_policy`` loads image-text-to-text models only, so every model checked here takes images.
- A prompts file is JSONL, ``{"text": ..., "images": [...]}`` per line (images relative to the file), the
  images placed before the text in one user turn, the training layout.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from transformers import GenerationConfig

from ..errors import RepicError
from ..prompts import (
    MERGE_CHECK_OCT_QUESTION,
    MERGE_CHECK_VLT_QUESTION,
    count_image_placeholders,
    eval_question,
    inference_messages,
    oct_problem,
    training_messages,
    vlt_problem,
)
from .load import LoadedPolicy


@dataclass
class CheckPrompt:
    """One prompt: chat messages with one ``{"type": "image"}`` per image, and the images in order."""

    label: str
    messages: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)


@dataclass
class PromptComparison:
    """The reference model vs the other model on one prompt."""

    label: str
    positions: int  # logit positions compared: one per reference answer token, plus the last
    max_abs_logit_diff: float
    argmax_mismatches: int
    greedy_equal: bool
    reference_text: str
    merged_text: str


@dataclass
class MergeCheck:
    """The comparison over all prompts; ``causes`` says why a mismatch can appear (filled by the caller)."""

    prompts: list[PromptComparison]
    tolerance: float
    causes: list[str] = field(default_factory=list)

    @property
    def max_abs_logit_diff(self) -> float:
        return max(p.max_abs_logit_diff for p in self.prompts)

    @property
    def argmax_mismatch_share(self) -> float:
        return self.argmax_mismatches / sum(p.positions for p in self.prompts)

    @property
    def argmax_mismatches(self) -> int:
        return sum(p.argmax_mismatches for p in self.prompts)

    @property
    def greedy_equal(self) -> int:
        return sum(p.greedy_equal for p in self.prompts)

    @property
    def failures(self) -> list[str]:
        """What failed, in words; empty when the two models agree."""
        found = []
        if self.max_abs_logit_diff > self.tolerance:
            found.append(
                f"max |logit diff| {self.max_abs_logit_diff:.3g} exceeds the tolerance {self.tolerance:g}"
            )
        if self.argmax_mismatches:
            positions = sum(p.positions for p in self.prompts)
            found.append(
                f"the most likely next token differs at {self.argmax_mismatches} of {positions} positions"
            )
        if self.greedy_equal < len(self.prompts):
            differing = len(self.prompts) - self.greedy_equal
            found.append(f"greedy outputs differ on {differing} of {len(self.prompts)} prompts")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failures": self.failures,
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "argmax_mismatch_share": self.argmax_mismatch_share,
            "greedy_equal": self.greedy_equal,
            "prompts_checked": len(self.prompts),
            "tolerance": self.tolerance,
            "causes": self.causes,
            "prompts": [asdict(p) for p in self.prompts],
        }


# ------------------------------------------------------------------------------------------ prompts
def default_check_prompts() -> list[CheckPrompt]:
    """Four prompts in RePIC's layouts over images drawn in memory (see the module docstring)."""
    ball, box = "a small red ball", "a blue box with a yellow stripe"
    ref_ball, ref_box = _drawn_image(ball_at=(56, 56)), _drawn_image(box_at=(56, 56))
    query_ball, query_both = _drawn_image(ball_at=(32, 80)), _drawn_image(ball_at=(30, 40), box_at=(80, 76))
    rng = random.Random(0)  # training_messages draws ICT suffixes from it; OCT and VLT prompts draw nothing
    yes_no = oct_problem("<kim>", 1, MERGE_CHECK_OCT_QUESTION)
    where = vlt_problem(MERGE_CHECK_VLT_QUESTION, "<bo>", tag="<bo>", info=ball)
    return [
        CheckPrompt(
            "caption, 1 reference",
            inference_messages([("<bo>", ball)], eval_question(0)),
            [ref_ball, query_ball],
        ),
        CheckPrompt(
            "caption, 2 references",
            inference_messages([("<bo>", ball), ("<kim>", box)], eval_question(1)),
            [ref_ball, ref_box, query_both],
        ),
        CheckPrompt("yes/no, 1 reference", training_messages("oct", yes_no, 2, rng), [ref_box, query_ball]),
        CheckPrompt("box, 1 image", training_messages("vlt", where, 1, rng), [query_both]),
    ]


def _drawn_image(
    *, ball_at: tuple[int, int] | None = None, box_at: tuple[int, int] | None = None
) -> Image.Image:
    """A 112x112 picture with a red ball and/or a striped blue box centred where asked."""
    image = Image.new("RGB", (112, 112), (214, 224, 200))
    draw = ImageDraw.Draw(image)
    if ball_at:
        x, y = ball_at
        draw.ellipse((x - 16, y - 16, x + 16, y + 16), fill=(200, 30, 40))
    if box_at:
        x, y = box_at
        draw.rectangle((x - 18, y - 14, x + 18, y + 14), fill=(40, 60, 190))
        draw.rectangle((x - 18, y - 3, x + 18, y + 3), fill=(240, 210, 40))
    return image


def load_check_prompts(path: str | os.PathLike) -> list[CheckPrompt]:
    """Prompts from a JSONL file, one ``{"text": "...", "images": ["a.png", ...]}`` per line.

    Images are optional and relative to the file's folder; each row is labelled with its line number.
    """
    file = Path(path).expanduser().resolve()
    example = '{"text": "Describe the image.", "images": ["photo.png"]}'
    if not file.is_file():
        raise RepicError(f"prompts file not found: {file}. Pass a JSONL file with one {example} per line")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise RepicError(f"{file} is not UTF-8 text ({exc.reason}); re-save it as UTF-8 JSONL") from exc
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{file}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RepicError(
                f"{where} is not JSON ({exc.msg}); write one object per line, e.g. {example}"
            ) from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise RepicError(f'{where} needs a non-empty "text" string, e.g. {example}')
        paths = row.get("images", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise RepicError(f'{where}: "images" must be a list of image paths relative to {file.parent}')
        content = [{"type": "image"} for _ in paths] + [{"type": "text", "text": row["text"]}]
        images = [_open_image(file.parent / p, where) for p in paths]
        prompts.append(CheckPrompt(f"line {number}", [{"role": "user", "content": content}], images))
    if not prompts:
        raise RepicError(f"{file} holds no prompts: write one {example} per line")
    return prompts


def _open_image(path: Path, where: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as exc:  # missing, unreadable or not an image
        raise RepicError(
            f"{where}: cannot read the image {path} ({type(exc).__name__}); fix the path"
        ) from exc


def resolve_prompts(prompts: Sequence[CheckPrompt] | str | os.PathLike | None) -> list[CheckPrompt]:
    """The default prompts (None), a JSONL file's (a path), or the given ones, checked."""
    if prompts is None:
        return default_check_prompts()
    if isinstance(prompts, (str, os.PathLike)):
        return load_check_prompts(prompts)
    prompts = list(prompts)
    if not prompts:
        raise RepicError("the check needs at least one prompt; pass None for the default prompts")
    for prompt in prompts:
        placeholders = count_image_placeholders(prompt.messages)
        if placeholders != len(prompt.images):
            raise RepicError(
                f"check prompt {prompt.label!r} has {placeholders} image placeholders but "
                f'{len(prompt.images)} images: give one {{"type": "image"}} per image'
            )
    return prompts


# ------------------------------------------------------------------------------------------ comparing
@dataclass
class Reference:
    """The reference model's answer to one prompt: the processed inputs, its greedy answer, the logits."""

    label: str
    inputs: dict[str, torch.Tensor]
    continuation: torch.Tensor  # [T] generated token ids
    logits: torch.Tensor  # [T + 1, V] at the positions predicting each generated token, and the next one
    text: str


def reference_outputs(
    policy: LoadedPolicy, prompts: Sequence[CheckPrompt], max_new_tokens: int
) -> list[Reference]:
    """Greedy answers of ``policy`` to ``prompts`` and its logits along them."""
    references = []
    for prompt in prompts:
        text = policy.processor.apply_chat_template(
            prompt.messages, add_generation_prompt=True, tokenize=False
        )
        inputs = dict(policy.processor(text=[text], images=prompt.images or None, return_tensors="pt"))
        continuation = _greedy(policy, inputs, max_new_tokens)
        logits = _continuation_logits(policy.model, inputs, continuation)
        references.append(
            Reference(prompt.label, inputs, continuation, logits, _decode(policy, continuation))
        )
    return references


def compare(policy: LoadedPolicy, references: Sequence[Reference], tolerance: float) -> MergeCheck:
    """How far ``policy`` is from the reference outputs (the prompts are processed as for the reference)."""
    comparisons = []
    for reference in references:
        logits = _continuation_logits(policy.model, reference.inputs, reference.continuation)
        continuation = _greedy(policy, reference.inputs, len(reference.continuation))
        comparisons.append(
            PromptComparison(
                label=reference.label,
                positions=logits.shape[0],
                max_abs_logit_diff=(logits - reference.logits).abs().max().item(),
                argmax_mismatches=int((logits.argmax(-1) != reference.logits.argmax(-1)).sum()),
                greedy_equal=torch.equal(continuation, reference.continuation),
                reference_text=reference.text,
                merged_text=_decode(policy, continuation),
            )
        )
    return MergeCheck(comparisons, tolerance)


def _greedy(policy: LoadedPolicy, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> torch.Tensor:
    """Greedy answer ids ``[T]`` under a fresh generation config."""
    tokenizer = policy.processor.tokenizer
    settings = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=policy.model.generation_config.eos_token_id or tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.no_grad():
        output = policy.model.generate(**inputs, generation_config=settings)
    return output[0, inputs["input_ids"].shape[1] :]


def _continuation_logits(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], continuation: torch.Tensor
) -> torch.Tensor:
    """Logits ``[T + 1, V]`` over the full sequence (prompt + answer), from the last prompt position on."""
    prompt_length = inputs["input_ids"].shape[1]
    extended = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.shape == inputs["input_ids"].shape:
            # per-token inputs grow with the answer: its ids, attention 1, token type 0 (text, not image)
            tail = (
                continuation
                if key == "input_ids"
                else torch.full_like(continuation, int(key == "attention_mask"))
            )
            value = torch.cat([value, tail.unsqueeze(0).to(value.dtype)], dim=1)
        extended[key] = value
    with torch.no_grad():
        logits = model(**extended, use_cache=False).logits
    return logits[0, prompt_length - 1 :].float()


def _decode(policy: LoadedPolicy, ids: torch.Tensor) -> str:
    return policy.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
