"""The evaluation engine on the real tiny model: answers are ``generate_batched``'s, rewards the training
reward's, means per task in canonical order, the model's mode restored; prediction files scored as
``repic eval`` scores them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from repic.evaluate import EvalTask, display_names, evaluate, load_predictions, score_predictions
from repic.inference import GenerationSettings, PromptInput, generate_batched
from repic.prompts import inference_messages, training_messages
from repic.rewards import RewardOptions, compute


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for number in range(4):
        rng = random.Random(number)
        image = Image.new("RGB", (56 if number % 2 else 112,) * 2, tuple(rng.randrange(256) for _ in range(3)))
        image.save(folder / f"{number}.png")
        paths.append(str(folder / f"{number}.png"))
    return paths


def tasks(images: list[str]) -> list[EvalTask]:
    """Two OCT questions, a VLT box, an ICT caption and one prompt answered only (no task)."""
    rng = random.Random(0)
    oct_problem = "<bo> is shown in the first image; the last image is the query image. Is <bo> in the query image?"
    return [
        EvalTask(training_messages("oct", oct_problem, 2, rng), [images[1], images[0]], "oct", "yes"),
        EvalTask(training_messages("vlt", "Where is <bo>?", 1, rng), [images[2]], "vlt", [0, 0, 40, 40]),
        EvalTask(inference_messages([("<bo>", "a red toy")], "Describe it."), [images[1], images[2]], "ict", "<bo>",
                 shown=["<bo>"]),
        EvalTask(training_messages("oct", oct_problem, 2, rng), [images[3], images[2]], "oct", "no"),
        EvalTask(inference_messages([], "Describe it."), [images[0]]),
    ]


def test_answers_are_generate_batched_and_rewards_the_training_reward(noisy_policy, images):
    settings = GenerationSettings(max_new_tokens=12, batch_size=2)
    options = RewardOptions(min_caption_chars=5)
    given = tasks(images)
    noisy_policy.model.train()  # as in the middle of a training run
    evaluation = evaluate(noisy_policy.model, noisy_policy.processor, given, settings, options=options)
    assert noisy_policy.model.training  # the mode is restored

    noisy_policy.model.eval()
    prompts = [PromptInput(t.prompt, [Image.open(path).convert("RGB") for path in t.images]) for t in given]
    assert evaluation.answers == generate_batched(noisy_policy.model, noisy_policy.processor, prompts, settings)
    scored = list(zip(given[:4], evaluation.answers[:4], strict=True))
    expected = [compute(t.task, a.text, t.solution, options, shown=t.shown) for t, a in scored]
    assert evaluation.rewards == [*expected, None]  # the last prompt is answered, not scored
    means = evaluation.mean_rewards()
    assert list(means) == ["oct", "vlt", "ict"]  # canonical order, not the order of the tasks
    assert means == {"oct": (expected[0] + expected[3]) / 2, "vlt": expected[1], "ict": expected[2]}
    assert evaluation.mean_reward() == sum(expected) / 4
    assert evaluate(noisy_policy.model, noisy_policy.processor, [], settings).mean_reward() == 0.0


def test_a_training_row_is_a_task(images):
    row = {"prompt": [{"role": "user", "content": []}], "images": [Path(images[0])], "task": "oct"}
    task = EvalTask.from_row(row, task="oct", solution="no")
    assert (task.images, task.task, task.solution, task.shown) == ([images[0]], "oct", "no", None)


def test_prediction_files_are_scored_as_repic_eval_scores_them(tmp_path, run_cli):
    rows = [
        {"image": "a.png", "task": "ict_multi", "concepts": ["<bo>", "<kim>"], "prediction": "<bo> and Kim Lee play."},
        {"image": "b.png", "task": "ict", "concepts": ["<kim>"], "prediction": "kim sits."},
        {"image": "c.png", "task": "oct", "concepts": ["<bo>"], "prediction": "Yes.", "solution": "yes"},
        {"image": "d.png", "task": "vlt", "concepts": ["<bo>"], "prediction": "[0, 0, 10, 10]", "solution": [0, 0, 10, 20]},
    ]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    database = tmp_path / "database.json"
    assert run_cli("db", "init", database).exit_code == 0
    from repic.concepts.database import ConceptDatabase
    from repic.records import Concept

    image = tmp_path / "kim.png"
    Image.new("RGB", (8, 8)).save(image)
    db = ConceptDatabase.load(database)
    db.add(Concept("<kim>", "Kim Lee", "person", "x", [image]))
    db.save()
    aliases = display_names(ConceptDatabase.load(database))
    assert aliases == {"<kim>": ["Kim Lee"]}

    scores = score_predictions(load_predictions(path, on_error="fail"), aliases)
    assert run_cli("eval", path, "--database", database, "--json", tmp_path / "report.json").exit_code == 0
    report = json.loads((tmp_path / "report.json").read_text())["files"][0]
    assert report["captions"]["official"] == {"variant": scores.captions.variant, **vars(scores.captions.official)}
    assert report["captions"]["strict"] == {"aliases": 1, **vars(scores.captions.strict)}
    assert report["recognition"] == vars(scores.recognition) and report["localization"] == vars(scores.localization)
    # The official two-concept script is case-sensitive ("Kim" is not <kim>); the strict mode is not.
    assert (scores.captions.variant, scores.captions.official.correct, scores.captions.strict.correct) == ("two", 2, 3)
    assert (scores.recognition.correct, scores.localization.hits) == (1, 1)
