"""The tiny model's tokenizer: byte-level BPE trained locally, with Qwen's special tokens and chat template.

What it chose and why:

- **Byte-level BPE** trained with the ``tokenizers`` library on the caller's text (the concept world's
  captions and prompts), after Qwen2's own pre-tokenizer regex, so any UTF-8 text encodes and the vocabulary
  (~800) fits a model of under a million parameters.
- **Names are exactly four tokens.** Concept names of the built-in world match ``TINY_NAME_PATTERN``
  (``<`` + two consonant-vowel syllables + ``>``). A ``Split`` pre-tokenizer rule isolates ``<``, each
  syllable and ``>`` of such a name before BPE runs, and every one of the 85 syllables is guaranteed a
  vocabulary entry (added after training when the corpus was too small to learn it). So ``<bako>`` is
  always ``<`` ``ba`` ``ko`` ``>``, in any context, and a never-seen name reuses known syllable tokens.
  Without the rule BPE merges names unpredictably and held-out names hold tokens the model never trained
  on; a feasibility study found the copy-the-name skill does not emerge then.
- **Qwen2.5-VL's special tokens and chat template layout**, so prompts built for Qwen2.5-VL-7B work on the
  tiny model unchanged: ``<|im_start|>role\\n...<|im_end|>\\n`` turns, a default system turn, and each image
  as ``<|vision_start|><|image_pad|><|vision_end|>`` wherever it sits among the text parts (several images
  per turn). The template here is written for this project and renders the same layout.
- Wrapped as a ``transformers`` fast tokenizer, so ``AutoTokenizer`` / ``AutoProcessor`` reload it from
  ``tokenizer.json`` with every rule intact.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import product

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ..errors import RepicError
from ..prompts import DEFAULT_SYSTEM_PROMPT, TOKENIZER_CORPUS_LINES

CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"
NAME_SYLLABLES: tuple[str, ...] = tuple(c + v for c, v in product(CONSONANTS, VOWELS))  # 85 syllables

TINY_NAME_PATTERN = re.compile(rf"<(?:[{CONSONANTS}][{VOWELS}]){{2}}>")
"""Concept names the tiny tokenizer keeps at exactly four tokens, e.g. ``<bako>``."""

_SYL = f"[{CONSONANTS}][{VOWELS}]"
# The four pieces of a name, each matched with look-arounds so only complete names are split:
# the opening "<", the first syllable, the second syllable, the closing ">".
_NAME_PIECES = rf"<(?={_SYL}{_SYL}>)|(?<=<){_SYL}(?={_SYL}>)|(?<=<{_SYL}){_SYL}(?=>)|(?<=<{_SYL}{_SYL})>"
# Qwen2's pre-tokenizer regex (contractions, letter runs, single digits, punctuation, whitespace).
_QWEN_PRETOKENIZE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# Qwen2.5-VL's special tokens in Qwen's order; they take the ids after the BPE vocabulary, as in Qwen.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2.5-VL's conversation layout. Message content is a string or a list of parts ({"type": "image"},
# {"type": "video"}, {"type": "text", "text": ...}); ``add_vision_id`` prefixes "Picture N: " as Qwen's does.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}"
    "{%- set video_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set image_count.value = image_count.value + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Picture ' + image_count.value | string + ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set video_count.value = video_count.value + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Video ' + video_count.value | string + ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}"
    "{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)


def train_tiny_tokenizer(texts: Iterable[str], *, vocab_size: int = 768) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer on ``texts`` and wrap it as a Qwen-style fast tokenizer.

    ``vocab_size`` is the BPE target (256 byte symbols included); the final vocabulary adds any name
    syllable the corpus did not teach plus Qwen's 14 special tokens. Raises ``RepicError`` on an empty
    corpus.
    """
    corpus = [text for text in texts if text and not text.isspace()]
    if not corpus:
        raise RepicError(
            "the tokenizer corpus is empty: pass the text the model will read (captions, prompts), "
            "one document per line, e.g. `repic models build-tiny --corpus world.txt`"
        )
    if vocab_size < 256 + len(NAME_SYLLABLES):
        raise RepicError(
            f"vocab_size {vocab_size} is too small: it must hold the 256 byte symbols and the "
            f"{len(NAME_SYLLABLES)} name syllables; use at least {256 + len(NAME_SYLLABLES)}"
        )

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_NAME_PIECES), behavior="isolated"),
            pre_tokenizers.Split(Regex(_QWEN_PRETOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes, nothing is unknown
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    backend = _with_all_name_syllables(backend)
    backend.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in QWEN_SPECIAL_TOKENS]
    )

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
    )


def _with_all_name_syllables(backend: Tokenizer) -> Tokenizer:
    """Give every name syllable a vocabulary entry and the merge that produces it.

    A name syllable is always its own two-byte pre-token, so the only merge that can apply inside it is
    its own; a merge appended at the lowest priority therefore behaves exactly like a learned one.
    """
    state = json.loads(backend.to_str())
    bpe = state["model"]
    vocab: dict[str, int] = bpe["vocab"]
    for syllable in NAME_SYLLABLES:
        if syllable not in vocab:
            vocab[syllable] = len(vocab)
            bpe["merges"].append([syllable[0], syllable[1]])
    return Tokenizer.from_str(json.dumps(state))


def check_name_tokenization(tokenizer: PreTrainedTokenizerBase, names: Sequence[str]) -> dict:
    """How ``tokenizer`` splits each concept name, alone and inside a sentence.

    Returns ``tokens`` (name -> its tokens alone), ``lengths`` (token count -> number of names),
    ``context_dependent`` (names whose tokens change inside "This is NAME.") and ``consistent`` (every name
    has the same token count and none is context-dependent). Works with any fast tokenizer, so the same
    check tells how a real model's tokenizer treats the names.

    >>> from repic.world.tokenizer import train_tiny_tokenizer
    >>> report = check_name_tokenization(train_tiny_tokenizer(["<bako> sat."]), ["<bako>", "<zitu>"])
    >>> report["lengths"], report["consistent"]
    ({4: 2}, True)
    """
    if not names:
        raise RepicError("no names to check: pass at least one concept name such as '<bako>'")
    tokens: dict[str, list[str]] = {}
    context_dependent: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise RepicError(f"name {name!r} is empty or not a string: names look like '<bako>'")
        alone = tokenizer.tokenize(name)
        tokens[name] = alone
        if _tokens_in_sentence(tokenizer, name) != alone:
            context_dependent.append(name)
    lengths = Counter(len(pieces) for pieces in tokens.values())
    return {
        "tokens": tokens,
        "lengths": dict(sorted(lengths.items())),
        "context_dependent": context_dependent,
        "consistent": len(lengths) == 1 and not context_dependent,
    }


def _tokens_in_sentence(tokenizer: PreTrainedTokenizerBase, name: str) -> list[str]:
    """The tokens overlapping ``name`` when it sits inside a sentence."""
    prefix = "This is "
    sentence = f"{prefix}{name}."
    start, end = len(prefix), len(prefix) + len(name)
    encoded = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    return [
        piece
        for piece, (lo, hi) in zip(pieces, encoded["offset_mapping"], strict=True)
        if lo < end and hi > start
    ]


def builtin_corpus() -> list[str]:
    """A generic corpus of RePIC-style prompts, answers and captions, used when no corpus is given.

    It covers the prompt words of the RePIC tasks, digits for boxes and every name syllable; a tokenizer
    trained on the concept world's own text (``--corpus``) fits that world better.
    """
    categories = ("dog", "cat", "mug", "toy", "bag", "car", "plant", "person", "chair", "bottle")
    colours = ("red", "green", "blue", "yellow", "black", "white", "orange", "purple")
    places = ("on a table", "in a garden", "next to a window", "on the floor", "in a room")
    lines = []
    for i, (first, second) in enumerate(
        zip(NAME_SYLLABLES, NAME_SYLLABLES[7:] + NAME_SYLLABLES[:7], strict=True)
    ):
        name = f"<{first}{second}>"
        category, colour, place = (
            categories[i % len(categories)],
            colours[i % len(colours)],
            places[i % len(places)],
        )
        box = {"x1": i % 97, "y1": (3 * i) % 89, "x2": i + 40, "y2": i + 52}
        lines += [line.format(name=name, colour=colour, category=category, place=place, **box)
                  for line in TOKENIZER_CORPUS_LINES]
        lines.append("yes" if i % 2 else "no")
    return lines
