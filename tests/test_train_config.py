"""Training configuration: shipped recipes, layering, typed reading, validation, batch layout, saving."""

from __future__ import annotations

import dataclasses
import doctest

import pytest
import yaml

from repic.errors import RepicError
from repic.train import config as config_module
from repic.train.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    recipe_path,
    save_config,
    shipped_recipes,
)


def test_doctests():
    assert doctest.testmod(config_module).failed == 0


# ------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_every_shipped_recipe_loads_and_validates(name):
    method = yaml.safe_load(recipe_path(name).read_text())["method"]
    config = load_config(name, method=method)
    assert config.method == method
    # the shipped recipes are written out in full, so none silently relies on a renamed key
    assert set(yaml.safe_load(recipe_path(name).read_text())) <= set(config_to_dict(config))


def test_the_five_recipes_are_shipped():
    assert set(shipped_recipes()) == {
        "paper-qwen2.5-vl-7b", "qwen3-vl-8b-gspo", "demo-tiny", "sft-demo-tiny", "sft-paper-qwen2.5-vl-7b"
    }


def test_paper_recipe_holds_the_papers_numbers():
    config = load_config("paper-qwen2.5-vl-7b")
    assert config.model.name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (config.model.lora.r, config.model.lora.alpha, config.model.lora.dropout) == (64, 128, 0.05)
    assert config.model.finetune == "lora" and config.model.freeze_vision
    grpo = config.grpo
    assert (grpo.num_generations, grpo.beta, grpo.max_completion_length, grpo.temperature) == (8, 0.04, 256, 1.0)
    assert (grpo.loss_type, grpo.scale_rewards, grpo.importance_sampling_level) == ("grpo", "group", "token")
    assert (config.optim.learning_rate, config.optim.epochs, config.run.precision) == (1e-5, 2.0, "bf16")
    assert config.rewards.min_caption_chars == 100
    # 8 GPUs x 1 prompt x 2 accumulation steps in the official script = 16 prompts a step
    assert grpo.prompts_per_step == 16


def test_gspo_recipe_uses_sequence_level_importance_sampling():
    config = load_config("qwen3-vl-8b-gspo")
    assert config.grpo.importance_sampling_level == "sequence"
    assert (config.grpo.epsilon, config.grpo.epsilon_high) == (3e-4, 4e-4)
    assert config.model.name_or_path == "Qwen/Qwen3-VL-8B-Instruct"


def test_demo_recipe_follows_the_tiny_study():
    config = load_config("demo-tiny")
    grpo = config.grpo
    assert (grpo.num_generations, grpo.prompts_per_step, grpo.max_completion_length) == (8, 4, 48)
    assert (grpo.loss_type, grpo.beta, grpo.temperature, grpo.top_k) == ("dapo", 0.04, 1.0, 0)
    assert (config.optim.learning_rate, config.optim.lr_scheduler) == (1e-4, "constant")  # 5e-4 collapsed here
    assert (grpo.warmup.steps, grpo.warmup.samples, grpo.warmup.learning_rate) == (40, 64, 3e-4)
    assert config.data.box_style == "list"  # the tiny base's own box format
    # the demo asks every model's VLT in the GRPO recipe's style, so its SFT baseline must train in the same
    assert load_config("sft-demo-tiny", method="sft").data.box_style == config.data.box_style


def test_a_recipe_for_the_other_trainer_is_refused():
    with pytest.raises(RepicError, match="sft-demo-tiny.yaml is for `repic train sft`"):
        load_config("sft-demo-tiny", method="grpo")


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(RepicError, match="shipped recipes: demo-tiny, paper-qwen2.5-vl-7b"):
        load_config("demo-tiyn")


# ------------------------------------------------------------------------------------------ layering
def test_layers_defaults_recipe_values_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: grpo\ngrpo: {beta: 0.1, num_generations: 4}\noptim: {max_steps: 5}\n")
    config = load_config(recipe, ["grpo.beta=0.2"], values={"optim.max_steps": 7, "grpo.beta": 0.3})
    assert config.grpo.beta == 0.2  # the --set override wins over values and the recipe
    assert config.optim.max_steps == 7  # values win over the recipe
    assert config.grpo.num_generations == 4  # the recipe wins over the default 8
    assert config.grpo.temperature == 1.0  # untouched default


@pytest.mark.parametrize(
    ("override", "read"),
    [
        ("optim.learning_rate=1e-5", 1e-5),  # YAML 1.1 reads "1e-5" as a string; the float field takes it
        ("optim.learning_rate=3", 3.0),  # an int is a valid float
        ("data.tasks=[ict, yes_no]", ["ict", "yes_no"]),
        ("run.output_dir=null", None),
        ("grpo.rollout.generation_kwargs={min_new_tokens: 8}", {"min_new_tokens": 8}),
    ],
)
def test_override_values_are_read_as_yaml(override, read):
    config = load_config(None, [override])
    key, _, _ = override.partition("=")
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    assert value == read


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("grpo.bta=0.1", r"unknown config key grpo.bta; did you mean grpo.beta\?"),
        ("grpo.beta=high", "config key grpo.beta must be a number, got 'high'"),
        ("grpo.num_generations=2.5", "config key grpo.num_generations must be a whole number"),
        ("model.freeze_vision=1", "config key model.freeze_vision must be true or false"),
        ("grpo.loss_type=ppo", "grpo.loss_type is 'ppo'; choose one of: grpo, dr_grpo, dapo, bnpo"),
        ("grpo.beta", "must look like section.key=value"),
        ("grpo=3", "config key grpo must be a mapping"),
        ("rewards.min_caption_chars=-1", "min_caption_chars must be a whole number >= 0"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(RepicError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["grpo.num_generations=1"], "num_generations must be at least 2"),
        (["grpo.prompts_per_step=3", "grpo.completions_per_device_batch=5"],
         r"must divide the completions of one step \(prompts_per_step 3 x num_generations 8 = 24\)"),
        (["grpo.rollout.compile=true"], "compile needs grpo.rollout.cache_implementation: static"),
        (["grpo.rollout.backend=vllm", "grpo.rollout.vllm_mode=server"], "needs grpo.rollout.vllm_server_base_url"),
        (["run.report_to=[mlflow]"], "run.report_to holds 'mlflow'"),
        (["data.tasks=[captions]"], "unknown task 'captions' in data.tasks"),
        (["grpo.temperature=0"], "grpo.temperature must be above 0"),
        (["optim.max_steps=0"], "optim.max_steps must be at least 1 or null"),
    ],
)
def test_validation_explains_what_cannot_work(overrides, message):
    with pytest.raises(RepicError, match=message):
        load_config(None, overrides)


def test_validation_reports_every_problem_at_once():
    with pytest.raises(RepicError) as error:
        load_config(None, ["grpo.num_generations=1", "grpo.temperature=-1"])
    assert "num_generations" in str(error.value) and "temperature" in str(error.value)


def test_the_rewards_section_takes_the_absent_name_cost():
    config = load_config("demo-tiny", values={"rewards.absent_name_cost": 0.5}, method="grpo")
    assert config.rewards.absent_name_cost == 0.5
    assert config.rewards.absent_name_penalty == 0.0  # the other way of charging stays off
    assert load_config(None, ["rewards.absent_name_cost=1"]).rewards.absent_name_cost == 1.0  # YAML int
    with pytest.raises(RepicError, match="set one of them"):
        load_config(None, ["rewards.absent_name_cost=0.5", "rewards.absent_name_penalty=0.5"])


# ------------------------------------------------------------------------------------------ saving
def test_saved_config_reads_back_equal(tmp_path):
    config = load_config("demo-tiny", ["run.output_dir=/tmp/x", "data.tasks=[ict]"])
    path = save_config(config, tmp_path / "config.yaml")
    assert load_config(path) == config
    assert config_from_dict(config_to_dict(config)) == config


def test_the_defaults_alone_are_a_valid_run_of_the_papers_grpo():
    config = load_config(None)  # no recipe and no overrides: the dataclass defaults, validated
    assert config == TrainConfig() and config.method == "grpo"
    grpo = config.grpo
    # the loss that reproduces the paper (see repic.train.grpo) is the default one, on 16 prompts x 8
    assert (grpo.loss_type, grpo.scale_rewards, grpo.beta, grpo.num_iterations) == ("grpo", "group", 0.04, 1)
    assert (grpo.prompts_per_step, grpo.num_generations) == (16, 8)
    assert load_config(None, method="sft").method == "sft"  # the SFT baseline's defaults validate too
    # validation does read the defaults: one of them pushed out of range is refused
    broken = dataclasses.replace(config, grpo=dataclasses.replace(grpo, num_generations=1))
    with pytest.raises(RepicError, match="grpo.num_generations must be at least 2"):
        config_module.validate(broken)
