"""``GrpoSection`` re-declares fields of TRL's ``GRPOConfig``: each still exists in the installed TRL with a
type that takes ours, the default where ours is meant to be TRL's, each of our choices among TRL's
documented values, and ``grpo_arguments`` passes every one. A TRL release that renames, retypes or re-defaults
one of them fails here, not in a run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing

import pytest
from trl import GRPOConfig

from repic.train.config import GrpoSection, RolloutSection, load_config
from repic.train.grpo import grpo_arguments

SAME = object()  # our default is TRL's

# ``grpo.<key>`` -> (GRPOConfig field, TRL's default: SAME, or TRL's own value where ours differs on purpose)
PASSED_AS_IS: dict[str, tuple[str, typing.Any]] = {
    "num_generations": ("num_generations", SAME),
    "max_completion_length": ("max_completion_length", 512),  # ours: the paper's 256
    "temperature": ("temperature", SAME),
    "top_p": ("top_p", SAME),
    "top_k": ("top_k", SAME),
    "beta": ("beta", 0.0),  # ours: the paper's KL weight, 0.04
    "loss_type": ("loss_type", "dapo"),  # ours: the paper's (VLM-R1's) per-sequence average, grpo
    "importance_sampling_level": ("importance_sampling_level", SAME),
    "scale_rewards": ("scale_rewards", SAME),
    "epsilon": ("epsilon", SAME),
    "epsilon_high": ("epsilon_high", SAME),
    "num_iterations": ("num_iterations", SAME),
    "mask_truncated_completions": ("mask_truncated_completions", SAME),
    "rollout.pad_prompts_to_multiple_of": ("pad_to_multiple_of", "auto"),  # TRL pads on Neuron only; ours never
    "rollout.vllm_mode": ("vllm_mode", SAME),
    "rollout.vllm_server_base_url": ("vllm_server_base_url", SAME),
    "rollout.vllm_gpu_memory_utilization": ("vllm_gpu_memory_utilization", SAME),
    "rollout.vllm_tensor_parallel_size": ("vllm_tensor_parallel_size", SAME),
}
# ``grpo.<key>`` -> (GRPOConfig field, what TRL gets for each of our values)
TRANSLATED: dict[str, tuple[str, list[tuple[typing.Any, typing.Any]]]] = {
    "rollout.cache_implementation": ("cache_implementation", [("dynamic", None), ("static", "static")]),
    "rollout.backend": ("use_vllm", [("transformers", False), ("vllm", True)]),
    "rollout.generation_kwargs": ("generation_kwargs", [({}, None), ({"repetition_penalty": 1.1}, {"repetition_penalty": 1.1})]),
}
# repic's own settings: how the step is cut, the up-front length check, the opt-in compiled decoding
REPIC_ONLY = {"prompts_per_step", "completions_per_device_batch", "max_prompt_length", "rollout.compile"}
# A valid value other than ours for each field passed as is (num_generations divides the batch of 8 below)
OTHER_VALUES = {
    "num_generations": 4, "max_completion_length": 99, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "beta": 0.5,
    "loss_type": "bnpo", "importance_sampling_level": "sequence", "scale_rewards": "batch", "epsilon": 0.3,
    "epsilon_high": 0.4, "num_iterations": 2, "mask_truncated_completions": True,
    "rollout.pad_prompts_to_multiple_of": 64, "rollout.vllm_mode": "server",
    "rollout.vllm_server_base_url": "http://localhost:9000", "rollout.vllm_gpu_memory_utilization": 0.5,
    "rollout.vllm_tensor_parallel_size": 2,
}
TRL_FIELDS = {f.name: f for f in dataclasses.fields(GRPOConfig)}
TRL_TYPES = typing.get_type_hints(GRPOConfig)


def section_fields(section: type, prefix: str = "") -> dict[str, tuple[type, dataclasses.Field]]:
    """``dotted key -> (type, field)`` of a section, rollout included; the warm-up is an SFT stage of its own."""
    hints = typing.get_type_hints(section)
    found = {}
    for f in dataclasses.fields(section):
        if f.name == "rollout":
            found.update(section_fields(RolloutSection, "rollout."))
        elif f.name != "warmup":
            found[prefix + f.name] = (hints[f.name], f)
    return found


OURS = section_fields(GrpoSection)


def classes(hint: typing.Any) -> set[type]:
    """The classes a type hint admits: ``int | None`` -> {int, NoneType}, ``dict[str, Any]`` -> {dict}."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return {typing.get_origin(arm) or arm for arm in (typing.get_args(hint) if union else (hint,))}


def default_of(f: dataclasses.Field) -> typing.Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def test_every_field_of_the_section_is_accounted_for():
    assert set(OURS) == set(PASSED_AS_IS) | set(TRANSLATED) | REPIC_ONLY
    assert set(OTHER_VALUES) == set(PASSED_AS_IS)


@pytest.mark.parametrize("key", sorted(PASSED_AS_IS))
def test_the_trl_field_exists_and_takes_our_type(key):
    name, _ = PASSED_AS_IS[key]
    assert name in TRL_FIELDS, f"GRPOConfig has no {name} any more (repic's grpo.{key}); update grpo_arguments"
    ours, theirs = classes(OURS[key][0]), classes(TRL_TYPES[name])
    for cls in ours:  # an int setting may go to a float field, never the other way
        assert cls in theirs or (cls is int and float in theirs), (key, ours, theirs)


@pytest.mark.parametrize("key", sorted(PASSED_AS_IS))
def test_our_default_is_trls_where_it_is_meant_to_be(key):
    name, trl_default = PASSED_AS_IS[key]
    ours, theirs = default_of(OURS[key][1]), default_of(TRL_FIELDS[name])
    if trl_default is SAME:
        assert ours == theirs, f"TRL's {name} default is now {theirs!r}, repic's grpo.{key} is {ours!r}"
    else:  # ours differs on purpose (see the table); a changed TRL default changes what the comment says
        assert (theirs, ours != theirs) == (trl_default, True), (key, ours, theirs)


@pytest.mark.parametrize("key", sorted(key for key, (_, f) in OURS.items() if "choices" in f.metadata
                                      and key in PASSED_AS_IS))
def test_each_of_our_choices_is_a_value_trl_documents(key):
    name, _ = PASSED_AS_IS[key]
    documented = TRL_FIELDS[name].metadata["help"]
    for choice in OURS[key][1].metadata["choices"]:  # quoted as 'grpo' or `'grpo'` in TRL's help
        assert re.search(rf"(?<!\w){re.escape(choice)}'", documented), (key, choice, documented)


@pytest.mark.parametrize("key", sorted(TRANSLATED))
def test_a_translated_field_exists_and_takes_what_we_give_it(key):
    name, pairs = TRANSLATED[key]
    assert name in TRL_FIELDS, f"GRPOConfig has no {name} any more (repic's grpo.{key}); update grpo_arguments"
    for _, given in pairs:
        assert type(given) in classes(TRL_TYPES[name]), (key, given, TRL_TYPES[name])


def arguments(values: dict[str, typing.Any], tmp_path) -> GRPOConfig:
    """``grpo_arguments`` of a configuration read from ``grpo.<key>=<value>`` overrides, as the CLI gives them."""
    config = load_config(None, [f"grpo.{key}={json.dumps(value)}" for key, value in values.items()])
    common = {"output_dir": str(tmp_path / "trainer"), "use_cpu": True, "bf16": False, "report_to": "none",
              "per_device_train_batch_size": 8}
    return grpo_arguments(config, common)


def test_grpo_arguments_passes_every_field_as_set(tmp_path):
    args = arguments({**OTHER_VALUES, "rollout.backend": "vllm"}, tmp_path)  # server mode is vLLM's
    for key, value in OTHER_VALUES.items():
        assert getattr(args, PASSED_AS_IS[key][0]) == value, key
    defaults = arguments({}, tmp_path)
    for key, (name, _) in PASSED_AS_IS.items():
        assert getattr(defaults, name) == default_of(OURS[key][1]), key  # ours, never TRL's, when unset


@pytest.mark.parametrize("key", sorted(TRANSLATED))
def test_grpo_arguments_translates_each_value(key, tmp_path):
    name, pairs = TRANSLATED[key]
    for ours, given in pairs:
        assert getattr(arguments({key: ours}, tmp_path), name) == given, (key, ours)
