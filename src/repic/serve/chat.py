"""OpenAI's chat-completions format, read and written: what lets any OpenAI client call a served model.

``chat_prompt(messages)`` turns OpenAI chat messages into a ``PromptInput``: text parts stay text, image
parts (``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``) become the model's
image placeholders with the decoded images in order. ``chat_completion(...)`` writes the response object
OpenAI's clients parse. What it chose and why:

- **Any ``model`` name is accepted** and echoed back: one model is served, as llama.cpp's server does.
- **Images only as data URLs**: the server fetches no URL (``repic.serve.uploads``).
- **Roles** ``system``, ``developer`` (read as system), ``user`` and ``assistant``; the model's chat
  template lays them out. Tool calls, ``n > 1`` and streaming are refused with a message saying so.
- ``temperature`` 0 or absent is greedy decoding (the paper's evaluation); above 0 it samples.
- ``usage.prompt_tokens`` counts the text of the templated prompt (image tokens are not counted).
- **Personalized captions through the same endpoint**: with ``"repic": {"mode": "retrieve", "top_k": 2}`` or
  ``{"mode": "given", "concepts": ["<bo>"]}`` in the request body (``extra_body`` in OpenAI's clients), the
  last image of the messages is the query and the last user text its question, and the answer is the
  service's personalized caption (the RAP / RePIC prompt over the concept database); the response then
  also carries ``repic``: the names found, the concepts shown and the retrieved ones with their scores.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..inference.generate import Generated, PromptInput
from .uploads import DEFAULT_LIMITS, ImageLimits, ServiceError, decode_data_url

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def chat_prompt(messages: list[Any], limits: ImageLimits = DEFAULT_LIMITS, *, max_images: int = 8) -> PromptInput:
    """The prompt of an OpenAI ``messages`` list; 400 naming the message that is malformed.

    Image parts beyond ``max_images`` are refused before they are decoded (each may be megapixels).
    """
    if isinstance(messages, list):
        count = sum(1 for message in messages if isinstance(message, dict) and isinstance(message.get("content"), list)
                    for part in message["content"] if isinstance(part, dict) and part.get("type") == "image_url")
        if count > max_images:
            raise ServiceError(400, f"the messages hold {count} images, more than the limit of {max_images}; "
                                    "send fewer")
    if not isinstance(messages, list) or not messages:
        raise ServiceError(400, "messages must be a non-empty list of {'role': ..., 'content': ...} objects")
    converted, images = [], []
    for number, message in enumerate(messages):
        where = f"messages[{number}]"
        if not isinstance(message, dict):
            raise ServiceError(400, f"{where} must be an object with 'role' and 'content'")
        role = ROLES.get(message.get("role"))
        if role is None:
            raise ServiceError(400, f"{where} has role {message.get('role')!r}; use system, user or assistant")
        content = message.get("content")
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        elif isinstance(content, list):
            for index, part in enumerate(content):
                parts.append(_part(part, f"{where}.content[{index}]", images, limits))
        else:
            raise ServiceError(400, f"{where} needs 'content': a string or a list of text and image_url parts")
        converted.append({"role": role, "content": parts})
    if not any(message["role"] == "user" for message in converted):
        raise ServiceError(400, "messages hold no user message; add one with the question")
    return PromptInput(converted, images)


def _part(part: Any, where: str, images: list, limits: ImageLimits) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            raise ServiceError(400, f"{where} needs image_url.url, a 'data:image/...;base64,' URL")
        images.append(decode_data_url(url, limits))
        return {"type": "image"}
    raise ServiceError(400, f"{where} is {kind!r}; only 'text' and 'image_url' parts are understood")


def personalized_request(options: Any, prompt: PromptInput) -> dict[str, Any]:
    """The ``repic`` options of a chat request as ``CaptionService.caption`` arguments (query image, question)."""
    if not isinstance(options, dict):
        raise ServiceError(400, "'repic' must be an object, e.g. {\"mode\": \"retrieve\", \"top_k\": 2}")
    unknown = set(options) - {"mode", "concepts", "top_k"}
    if unknown:
        raise ServiceError(400, f"'repic' has unknown keys {sorted(unknown)}; use mode, concepts, top_k")
    concepts = options.get("concepts", [])
    if isinstance(concepts, str):
        concepts = concepts.split(",")
    top_k = options.get("top_k", 2)
    if (not isinstance(concepts, list) or not all(isinstance(tag, str) for tag in concepts)
            or isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise ServiceError(400, "'repic.concepts' must be a list of tags like [\"<bo>\"] and 'repic.top_k' a number")
    if not prompt.images:
        raise ServiceError(400, "a personalized caption needs the query image: add an image_url part")
    users = [m for m in prompt.messages if m["role"] == "user"]
    question = " ".join(part["text"] for part in users[-1]["content"] if part["type"] == "text").strip()
    return {"image": prompt.images[-1], "mode": options.get("mode", "given" if concepts else "retrieve"),
            "concepts": concepts, "question": question or None, "top_k": top_k}


def prompt_tokens(processor: Any, prompt: PromptInput) -> int:
    """Tokens of the templated prompt's text (image placeholders count as their marker tokens only)."""
    text = processor.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=False)
    return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_completion(model: str, answer: Generated, prompt_token_count: int) -> dict[str, Any]:
    """OpenAI's ``chat.completion`` object for one answer."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": "stop" if answer.ended else "length",
            "logprobs": None,
        }],
        "usage": {"prompt_tokens": prompt_token_count, "completion_tokens": answer.new_tokens,
                  "total_tokens": prompt_token_count + answer.new_tokens},
    }
