"""Every prompt string of the project: task questions, answer instructions, ICT suffixes, inference layout,
and the detectors', the merge check's, the judge's, pretraining's and the tiny tokenizer's texts.

Two layouts exist, and both are kept because each matches a checkpoint users have:

* **Training** (the official RePIC GRPO script): one user turn holding every image first (references, then
  the query), then one text. The sample file stores the bare ``problem``; the answer instruction (OCT, VLT)
  or the ICT suffix, drawn per prompt with the caller's seeded ``random.Random``, is added when the prompt
  is built, as the official script does, so a sample file trains unchanged in either code.
* **Inference** (RAP / RePIC captioning scripts): a system prompt, then each reference image followed by
  ``"N. Name: <x>, Info: ..."``, then the query image with ``"This is the query image. <question>"``.
  The evaluation questions are the official three, cycled over the evaluation rows.

Names in prompts are always the bracketed tag (``<bo>``): it is the string the rewards and the scorer look
for. VLT answers: ``"json"`` (the default) keeps the official instruction, ``"list"`` asks for the bare
``[x1, y1, x2, y2]`` list, which smaller models follow more reliably; either answer holds the list the
reward reads.

Messages are in the TRL / Hugging Face chat format, ``{"type": "image"}`` placeholders with the images
passed separately, exactly one placeholder per image.

In full: docs/notes/prompt-layouts.md
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from .errors import RepicError
from .records import Box
from .tasks import normalize_task

Message = dict[str, Any]

# --- answer instructions (official strings) -------------------------------------------------------------

OCT_ANSWER_INSTRUCTION = "The final answer must be either 'yes' or 'no' with no additional output."
VLT_ANSWER_INSTRUCTIONS: dict[str, str] = {
    "json": "For bounding box coordinates, return the final answer in JSON format.",
    "list": "Return the bounding box as [x1, y1, x2, y2] in pixels of the image.",
}
BOX_STYLES: tuple[str, ...] = tuple(VLT_ANSWER_INSTRUCTIONS)

ICT_SUFFIX_WITH_NAME = "Output the final answer including its name."
ICT_SUFFIX_NO_DUPLICATION = "Output the final answer without duplicating the given information."
# One entry per face of the official five-sided roll: name 1/5, no duplication 1/5, nothing 3/5.
ICT_SUFFIX_ROLL: tuple[str, ...] = (ICT_SUFFIX_WITH_NAME, ICT_SUFFIX_NO_DUPLICATION, "", "", "")

# --- task questions (our phrasing; ``{name}`` is a tag, ``{target}`` a tag or "the <category>") -------

OCT_QUESTIONS: tuple[str, ...] = (
    "Is {name} in the query image?",
    "Does {name} appear in the query image?",
    "Can you find {name} in the query image?",
    "Is {name} shown in the query image?",
    "Can you see {name} in the query image?",
)
VLT_QUESTIONS: tuple[str, ...] = (
    "Give the bounding box of {target} in the image.",
    "Where is {target} in the image? Give its bounding box.",
    "Locate {target} in the image and give its bounding box.",
    "Provide the bounding box coordinates of {target} in the image.",
)
# Training caption questions are kept apart from the evaluation ones so that scores do not reward
# memorised phrasings.
TRAIN_CAPTION_QUESTIONS: tuple[str, ...] = (
    "Give a caption of the image.",
    "Describe the image with a personalized caption.",
    "Write a short caption for the image.",
    "Provide a personalized description of the image.",
    "Caption the image, calling everyone you recognize by name.",
)
# The official evaluation questions (RePIC captioning scripts), cycled in this order.
EVAL_CAPTION_QUESTIONS: tuple[str, ...] = (
    "Give a personalized caption of this image.",
    "Give a personal caption of the image.",
    "Provide a personalized caption of the given image.",
)

# --- inference layout (official strings) ----------------------------------------------------------------

INFERENCE_SYSTEM_PROMPT = (
    "You are a captioning assistant. Your task is to generate an accurate caption for the query image.\n"
    "Below is additional information about the reference images."
)
QUERY_IMAGE_LEAD = "This is the query image."


# --- problem texts (what a sample file stores) ----------------------------------------------------------


def reference_line(tag: str, info: str) -> str:
    """The reference text of one concept: ``Name: <bo>, Info: a small corgi``."""
    return f"Name: {tag}, Info: {info.strip()}"


def oct_problem(tag: str, n_references: int, question: str) -> str:
    """OCT problem text for ``n_references`` images of ``tag`` followed by the query image."""
    if n_references < 1:
        raise RepicError("an OCT sample needs at least one reference image of the concept")
    shown = "the first image" if n_references == 1 else f"the first {n_references} images"
    return f"{tag} is shown in {shown}; the last image is the query image. {question.format(name=tag)}"


def vlt_problem(question: str, target: str, *, tag: str | None = None, info: str = "") -> str:
    """VLT problem text: the concept's reference line (so a single image is answerable), then the question.

    ``target`` is what is asked for: the tag itself or a category phrase (``"the bear"``). The reference
    line is given whenever ``tag`` is, because the model sees no reference image in this task.
    """
    asked = question.format(target=target)
    return f"{reference_line(tag, info)}. {asked}" if tag else asked


def ict_problem(references: Sequence[tuple[str, str]], question: str) -> str:
    """ICT problem text: a ``Name: <x>, Info: ...`` line per reference image, in order, then the question."""
    if not references:
        raise RepicError("an ICT sample needs at least one reference concept")
    lines = [reference_line(tag, info) for tag, info in references]
    return "\n".join([*lines, f"The last image is the query image. {question}"])


def named_references_text(references: Sequence[tuple[str, str]], question: str) -> str:
    """A ``Name: <x>, Info: ...`` line per reference image, then the question; no query image (pretraining's
    copy-the-name rows, unlike ``ict_problem``).

    >>> named_references_text([("<bo>", "a corgi")], "What is its name?")
    'Name: <bo>, Info: a corgi\\nWhat is its name?'
    """
    return "\n".join([*(reference_line(tag, info) for tag, info in references), question])


# --- training prompts -----------------------------------------------------------------------------------


def ict_suffix(rng: random.Random) -> str:
    """The randomized ICT suffix: with-name 1/5, no-duplication 1/5, none 3/5 (official odds)."""
    return ICT_SUFFIX_ROLL[rng.randint(0, 4)]


def task_text(task: str, problem: str, rng: random.Random, *, box_style: str = "json") -> str:
    """The text of a training prompt: the problem plus the task's answer instruction or ICT suffix."""
    task = normalize_task(task)
    if task == "oct":
        return f"{problem} {OCT_ANSWER_INSTRUCTION}"
    if task == "vlt":
        return f"{problem} {vlt_answer_instruction(box_style)}"
    suffix = ict_suffix(rng)
    return f"{problem} {suffix}" if suffix else problem


def vlt_answer_instruction(box_style: str) -> str:
    """The VLT answer instruction for a box style (``"json"``: the official sentence)."""
    if box_style not in VLT_ANSWER_INSTRUCTIONS:
        raise RepicError(f"unknown box answer style {box_style!r}; use one of: {', '.join(BOX_STYLES)}")
    return VLT_ANSWER_INSTRUCTIONS[box_style]


def training_messages(
    task: str, problem: str, n_images: int, rng: random.Random, *, box_style: str = "json"
) -> list[Message]:
    """The chat prompt of one training sample: every image placeholder, then the task text.

    Unlike the official script, a multi-image VLT sample keeps one placeholder per image (the official
    fallback drops to one placeholder, which desynchronises images and tokens).
    """
    return [user_message(n_images, task_text(task, problem, rng, box_style=box_style))]


def user_message(n_images: int, text: str) -> Message:
    """``{"role": "user", "content": [image x n_images, text]}``; TRL needs at least one image per row."""
    if n_images < 1:
        raise RepicError("every RePIC prompt needs at least one image (TRL rejects image-free rows)")
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": text})
    message = {"role": "user", "content": content}
    assert count_image_placeholders([message]) == n_images
    return message


# --- inference prompts ----------------------------------------------------------------------------------


def eval_question(index: int) -> str:
    """The official evaluation question for the ``index``-th row (the scripts cycle through the three)."""
    return EVAL_CAPTION_QUESTIONS[index % len(EVAL_CAPTION_QUESTIONS)]


def inference_messages(
    references: Sequence[tuple[str, str]], question: str, *, system_prompt: str = INFERENCE_SYSTEM_PROMPT
) -> list[Message]:
    """RAP-style captioning prompt: system, then per reference its image and ``N. Name: <x>, Info: ...``,
    then the query image and ``This is the query image. <question>``.

    ``references`` are ``(tag, info)`` pairs in the order their images will be passed; the query image
    comes last. With no references (a zero-shot baseline) only the query image is shown.
    """
    content: list[dict[str, Any]] = []
    for number, (tag, info) in enumerate(references, start=1):
        content.append({"type": "image"})
        content.append({"type": "text", "text": f"{number}. {reference_line(tag, info)}"})
    content.append({"type": "image"})
    content.append({"type": "text", "text": f"{QUERY_IMAGE_LEAD} {question}"})
    messages = [
        {"role": "system", "content": [{"type": "text", "text": system_prompt}]},
        {"role": "user", "content": content},
    ]
    assert count_image_placeholders(messages) == len(references) + 1
    return messages


def count_image_placeholders(messages: Sequence[Message]) -> int:
    """How many ``{"type": "image"}`` entries the messages hold (must equal the number of images passed)."""
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image"
    )


# --- answers --------------------------------------------------------------------------------------------


def format_box_answer(box: Box | Sequence[float], label: str = "", *, style: str = "json") -> str:
    """A VLT answer in the chosen style; both contain the integer ``[x1, y1, x2, y2]`` the reward parses.

    >>> format_box_answer((10, 20.4, 110, 220), "<bo>")
    '[{"bbox_2d": [10, 20, 110, 220], "label": "<bo>"}]'
    >>> format_box_answer((10, 20, 110, 220), style="list")
    '[10, 20, 110, 220]'
    """
    coords = [int(round(v)) for v in box]
    if style == "list":
        return "[" + ", ".join(str(v) for v in coords) + "]"
    if style == "json":
        return json.dumps([{"bbox_2d": coords, "label": label}], ensure_ascii=False)
    raise RepicError(f"unknown box answer style {style!r}; use one of: {', '.join(BOX_STYLES)}")


# --- the merge check's default prompts (``repic.models.merge_check``) ------------------------------------
# A merged model is compared with base + adapter on RePIC's layouts over pictures drawn in memory.

MERGE_CHECK_OCT_QUESTION = "Is {name} in this image?"
MERGE_CHECK_VLT_QUESTION = "Where is {target}?"


# --- open-vocabulary detectors (``repic.concepts.detect``) ----------------------------------------------


def owl_text_queries(labels: Sequence[str]) -> list[str]:
    """OWLv2 / OWL-ViT: one text query per category, in the phrasing OWL was trained with.

    >>> owl_text_queries(["cat", "robot"])
    ['a photo of a cat', 'a photo of a robot']
    """
    return [f"a photo of a {label}" for label in labels]


def grounding_dino_prompt(labels: Sequence[str]) -> str:
    """Grounding DINO: one lower-case prompt, each category followed by a period.

    >>> grounding_dino_prompt(["Cat", "dog"])
    'cat. dog.'
    """
    return ". ".join(label.lower() for label in labels) + "."


# --- LLM-judge preference evaluation (``repic eval judge``) --------------------------------------------
# The paper's preference study asks a strong model which of two captions of one image is better. The
# judge sees the image (when given), the concepts truly in it and both captions, and answers one word;
# ``repic.evaluate.judge`` asks twice with the captions swapped to cancel the judge's order bias.

JUDGE_SYSTEM_PROMPT = (
    "You are an impartial judge of personalized image captions. A personalized caption describes the image "
    "faithfully and calls every personal concept in it by its name, written in angle brackets like <bo>, "
    "without naming concepts that are not in the image."
)


def judge_prompt(concepts: Sequence[str], question: str, caption_a: str, caption_b: str) -> str:
    """The judge's question about one image: its concepts, the caption question and captions A and B."""
    # No concepts means the file did not say (captions of unlabeled images), not that the image has none.
    named = ", ".join(concepts) if concepts else "not known"
    asked = f'The captions answer: "{question}"\n' if question else ""
    return (
        f"The personal concepts in this image: {named}.\n{asked}"
        f"Caption A: {caption_a.strip()}\n"
        f"Caption B: {caption_b.strip()}\n"
        "Which caption is more faithful to the image and names the right concepts? "
        "Answer with exactly one word: A, B, or tie."
    )


# --- Base pretraining (generic tasks) -------------------------------------------------------------------
# The built-in tiny model is pretrained on generic tasks of the synthetic world's training split
# (``repic.world.pretrain_data``): describing, category questions and boxes, copying a name given in the
# prompt, and same-object matching. No string here names a concept: ``{name}`` is filled with a fresh name
# that belongs to no concept, so the base learns to copy a name from its prompt, never to recite one.

PRETRAIN_DESCRIBE_QUESTIONS: tuple[str, ...] = (
    "Describe the image.",
    "Give a caption of the image.",
    "What is in this image?",
    "Write a short caption for the image.",
    "What do you see in the image?",
)
PRETRAIN_CATEGORY_QUESTIONS: tuple[str, ...] = (
    "Is there {article} {category} in this image?",
    "Does the image show {article} {category}?",
    "Can you see {article} {category} in the image?",
)
PRETRAIN_BOX_QUESTIONS: tuple[str, ...] = (
    "Where is the {category}?",
    "Where is the {category} in the image?",
    "Give the bounding box of the {category} in the image.",
    "Locate the {category} in the image.",
)
PRETRAIN_ECHO_QUESTIONS: tuple[str, ...] = (
    "What is its name?",
    "What is the name of the object in the first image?",
    "What is it called?",
    "Tell me its name.",
    "Which name was it given?",
)
# Asked after a query image (the inference layout), where "its" would be ambiguous.
PRETRAIN_ECHO_QUERY_QUESTIONS: tuple[str, ...] = (
    "What is the name of the object in the reference image?",
    "What is the reference object called?",
)
PRETRAIN_ECHO_ANSWERS: tuple[str, ...] = (
    "its name is {name}.",
    "Its name is {name}.",
    "It is called {name}.",
    "The name is {name}.",
)
# Several references, each with its own fresh name: copying every name, in order.
PRETRAIN_ECHO_MULTI_QUESTIONS: tuple[str, ...] = (
    "What are their names?",
    "What are the names of the objects in the reference images?",
    "Which names were they given?",
)
PRETRAIN_ECHO_MULTI_ANSWERS: tuple[str, ...] = (
    "their names are {names}.",
    "They are called {names}.",
    "The names are {names}.",
)
PRETRAIN_MATCH_QUESTIONS: tuple[str, ...] = (
    "An object is shown in the first image; the last image is the query image. "
    "Is that same object in the query image?",
    "The first image shows one object; the last image is the query image. "
    "Does the query image show that very object?",
)
# A scene -> its objects' categories, left to right: a short answer only the pixels give, at scene scale.
PRETRAIN_SCENE_OBJECT_QUESTIONS: tuple[str, ...] = (
    "Which objects are in this image?",
    "List the objects in the image, from left to right.",
    "What objects can you see?",
)
# Short-answer questions about a single-object view: the answer is one attribute, so the only way to get
# it right is to look at the pixels, which is what makes the vision tower learn.
PRETRAIN_OBJECT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "category": ("What is this object?", "What kind of object is this?"),
    "color": ("What colour is this {category}?", "What is the main colour of the object?"),
    "pattern": ("What pattern does this {category} have?", "Which pattern is on the object?"),
    "shape": ("What shape is this {category}?",),
    "accessory": ("What is this {category} wearing?", "Which accessory does the object have?"),
}


# --- Benchmark questions (``repic bench run``) ------------------------------------------------------------
# Recognition rows use the OCT layout above and caption rows the inference layout; multiple-choice and open
# questions show the row's concepts as the inference layout does (reference image, then its Name / Info
# line), then the query image when the row has one, then the question with its answer instruction.

BENCH_QA_SYSTEM_PROMPT = (
    "You are a helpful assistant. Below is information about the reference images: each shows a personal "
    "concept, called by its name in angle brackets."
)
CHOICE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHOICE_ANSWER_INSTRUCTION = "Answer with the letter of the right option only."
OPEN_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."


def choice_text(question: str, options: Sequence[str]) -> str:
    """A multiple-choice question with its options lettered A, B, C... in the order given.

    >>> print(choice_text("What is <bo>?", ["a dog", "a cat"]))
    Question: What is <bo>?
    Options:
    A. a dog
    B. a cat
    Answer with the letter of the right option only.
    """
    if not 2 <= len(options) <= len(CHOICE_LETTERS):
        raise RepicError(f"a multiple-choice question needs 2 to {len(CHOICE_LETTERS)} options, not {len(options)}")
    lines = [f"{letter}. {option.strip()}" for letter, option in zip(CHOICE_LETTERS, options, strict=False)]
    return "\n".join([f"Question: {question.strip()}", "Options:", *lines, CHOICE_ANSWER_INSTRUCTION])


def open_text(question: str) -> str:
    """An open question with its answer instruction."""
    return f"{question.strip()}\n{OPEN_ANSWER_INSTRUCTION}"


def question_messages(references: Sequence[tuple[str, str]], text: str, *, with_image: bool) -> list[Message]:
    """A question about personal concepts: per reference its image and ``N. Name: <x>, Info: ...``, then the
    query image (``with_image``) and ``This is the query image. <text>``, or the text alone.

    With no references there is no system turn (the model's chat template adds its default one); with no
    image and no references the prompt is text only.
    """
    content: list[dict[str, Any]] = []
    for number, (tag, info) in enumerate(references, start=1):
        content.append({"type": "image"})
        content.append({"type": "text", "text": f"{number}. {reference_line(tag, info)}"})
    if with_image:
        content.append({"type": "image"})
        content.append({"type": "text", "text": f"{QUERY_IMAGE_LEAD} {text}"})
    else:
        content.append({"type": "text", "text": text})
    messages: list[Message] = []
    if references:
        messages.append({"role": "system", "content": [{"type": "text", "text": BENCH_QA_SYSTEM_PROMPT}]})
    messages.append({"role": "user", "content": content})
    assert count_image_placeholders(messages) == len(references) + int(with_image)
    return messages


# --- The tiny model's tokenizer (``repic.world.tokenizer``) ---------------------------------------------
# The shipped tiny base's tokenizer and chat template were built from these exact strings.

# Qwen2.5-VL's system turn, which its chat template adds when a conversation starts without one.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
# The built-in tokenizer corpus, RePIC-style lines filled per name (``builtin_corpus``): a ``{name}``,
# a ``{colour}`` ``{category}``, a ``{place}`` phrase and the ``{x1}``..``{y2}`` of a box.
TOKENIZER_CORPUS_LINES: tuple[str, ...] = (
    "Name: {name}, Info: a {colour} {category}. Is {name} in this image? Answer yes or no.",
    "This is the query image. Give a caption of the image including the name {name}.",
    "{name}, the {colour} {category}, is {place}. Output the final answer including its name.",
    "Where is {name} in the image? Output the box [{x1}, {y1}, {x2}, {y2}].",
)
