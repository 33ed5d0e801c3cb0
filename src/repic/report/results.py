"""The results of a comparison run, as one typed record that reads and writes ``results.json``.

A ``Results`` holds, for an ordered list of models (any labels: ``base``, ``start``, ``sft``, ``repic``):

- concept-name scores per caption evaluation (``EVALUATIONS``: 1, 2 and 4 concepts with the true concepts
  given, 1 and 2 concepts with retrieved ones) in both scorer modes (``SCORER_MODES``), each the
  ``NameScores`` of ``repic.evaluate.metrics`` (rates and the counts behind them), plus how many captions
  name a concept that is not in the image (``absent_named``): the hallucination the P/R/F1 counting only
  sees indirectly, and the one retrieval invites, since retrieved references are not all in the picture;
- recognition accuracy (OCT) and localization accuracy with mean IoU (VLT), again the scorer's records;
- the run's timings per stage, the commands and configs it used, the machine and the date;
- the claim checks of the run (``ClaimCheck``: RePIC's numbers against another model's and whether they
  are higher), so the verdict a run printed is kept with its numbers.

Choices:

- The score records are the evaluator's own dataclasses, not copies, so a number cannot change meaning on
  its way from scorer to report. ``to_json`` writes them field by field (rates as fractions in [0, 1]);
  ``from_json`` checks every field's type against the dataclass, so a hand-edited or truncated file fails
  with the field's path in the message instead of a ``KeyError`` deep in the report writer.
- The file carries ``"format": "repic-results"`` and a ``version``; a reader refuses versions newer than
  its own, because silently dropping fields it does not know would misreport a newer run. Version 2 added
  ``checks``; version 1 files read with none. Version 3 added training seeds: ``seeds``, every seed's
  results of the models trained once per seed (``per_seed``), and per model and cell (``CELLS``) the
  summary over seeds (``summaries``: each seed's value, mean, std, min-max and the interval); ``models``
  then holds the first seed's results. Files of versions 1-2 read as one run with no seeds.
- Evaluation keys are a closed set: a typo (``"tow"``) would otherwise become a column of its own.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import RepicError
from ..evaluate.intervals import DOES_NOT_HOLD, HOLDS, WITHIN_NOISE, SeedSummary
from ..evaluate.metrics import LocalizationScores, NameScores, RecognitionScores

RESULTS_FORMAT = "repic-results"
RESULTS_VERSION = 3
VERDICTS = (HOLDS, WITHIN_NOISE, DOES_NOT_HOLD)

# Caption evaluations, in the order tables and plots show them, with their display labels.
EVALUATIONS: dict[str, str] = {
    "single": "1 concept",
    "two": "2 concepts",
    "four": "4 concepts",
    "single_retrieval": "1 concept, retrieval",
    "two_retrieval": "2 concepts, retrieval",
}
SCORER_MODES: dict[str, str] = {
    "official": "official (RePIC scripts)",
    "strict": "strict (whole names)",
}


def _cells() -> dict[str, str]:
    cells = {}
    for key, label in EVALUATIONS.items():
        cells[f"{key}.official"] = f"F1, {label} (official)"
        cells[f"{key}.strict"] = f"F1, {label} (strict)"
        cells[f"{key}.absent_named"] = f"absent named, {label}"
    return {**cells, "oct": "OCT accuracy", "vlt": "VLT accuracy (IoU >= 0.5)"}


# The measures summarized over seeds, keyed as ``repic.evaluate.models.query_outcomes`` keys them.
CELLS: dict[str, str] = _cells()


def percent(rate: float | None, digits: int = 1) -> str:
    """A rate in [0, 1] as a percentage string, ``"n/a"`` for a missing rate.

    >>> percent(0.6667), percent(None), percent(1.0, digits=0)
    ('66.7', 'n/a', '100')
    """
    return "n/a" if rate is None else f"{rate * 100:.{digits}f}"


@dataclass(frozen=True)
class Count:
    """``hits`` out of ``total`` (e.g. captions naming an absent concept out of all captions)."""

    hits: int
    total: int

    @property
    def rate(self) -> float | None:
        """``hits / total``, ``None`` when there is nothing to count.

        >>> Count(3, 12).rate, Count(0, 0).rate
        (0.25, None)
        """
        return self.hits / self.total if self.total else None


@dataclass(frozen=True)
class CaptionResult:
    """One model on one caption evaluation: ``rows`` captions scored in both modes.

    ``absent_named`` counts captions that name at least one concept absent from their image (``None`` when
    the evaluation did not count it, e.g. single-concept files without distractor references). Retrieval
    evaluations also count how well the references were chosen: ``retrieval_top1`` (queries whose first
    retrieved concept is in the image) and ``retrieval_recall`` (true concepts among the top K).
    """

    rows: int
    official: NameScores
    strict: NameScores
    absent_named: Count | None = None
    retrieval_top1: Count | None = None
    retrieval_recall: Count | None = None

    def scores(self, mode: str) -> NameScores:
        """The scores of scorer ``mode`` (``"official"`` or ``"strict"``)."""
        if mode not in SCORER_MODES:
            raise RepicError(f"unknown scorer mode {mode!r}; choose one of {', '.join(SCORER_MODES)}")
        return self.official if mode == "official" else self.strict


@dataclass(frozen=True)
class ModelResult:
    """Everything measured on one model; ``description`` says what it is (e.g. "base + 40-step warm-up")."""

    label: str
    description: str = ""
    captions: Mapping[str, CaptionResult] = field(default_factory=dict)
    recognition: RecognitionScores | None = None
    localization: LocalizationScores | None = None


@dataclass(frozen=True)
class ClaimCheck:
    """One comparison a claim makes: RePIC's number(s) against another model's, as shown (``"90.1 / 88.0"``).

    ``verdict`` is ``repic.evaluate.intervals.claim_verdict``'s (``holds``, ``within noise``, ``does not
    hold``); ``holds`` is whether it is ``holds``. ``gaps`` are the differences in each training seed and
    ``low`` / ``high`` the interval of their mean (as fractions; empty / ``None`` in files written before
    seeds were judged). ``note`` says what the verdict rests on."""

    statement: str
    repic: str
    other: str
    holds: bool
    note: str = ""
    verdict: str = ""
    gaps: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if not self.verdict:  # a check written before verdicts had three values
            object.__setattr__(self, "verdict", HOLDS if self.holds else DOES_NOT_HOLD)
        if self.verdict not in VERDICTS:
            raise RepicError(f"claim verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        if self.holds != (self.verdict == HOLDS):
            raise RepicError(f"claim check {self.statement!r}: holds={self.holds} contradicts {self.verdict!r}")
        object.__setattr__(self, "gaps", tuple(self.gaps))

    def with_note(self, verdict: str) -> str:
        """``verdict`` as shown (``"yes"``, ``"holds"``), followed by the note in parentheses when there is one."""
        return f"{verdict} ({self.note})" if self.note else verdict


def describe_machine() -> str:
    """A one-line description of this machine: OS, architecture, CPU count and Python version."""
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count() or '?'} CPUs, "
        f"Python {platform.python_version()}"
    )


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Results:
    """A comparison of models; see the module docs. ``timings`` maps stage name to seconds, in run order;
    ``wall_seconds`` is the stages' wall-clock time where some ran side by side (None: their sum).

    ``seeds`` are the training seeds; ``per_seed`` maps a model trained once per seed to its results in
    each (seed order), and ``summaries`` maps a model label to its ``SeedSummary`` per cell (``CELLS``).
    A model trained once (the base) has a summary over its one run: its values hold one number."""

    models: Sequence[ModelResult]
    title: str = "RePIC comparison"
    timings: Mapping[str, float] = field(default_factory=dict)
    wall_seconds: float | None = None
    commands: Sequence[str] = ()
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    checks: Sequence[ClaimCheck] = ()
    machine: str = field(default_factory=describe_machine)
    created: str = field(default_factory=_now)
    seeds: tuple[int, ...] = ()
    per_seed: Mapping[str, Sequence[ModelResult]] = field(default_factory=dict)
    summaries: Mapping[str, Mapping[str, SeedSummary]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        labels = [model.label for model in self.models]
        if not labels:
            raise RepicError("results need at least one model; add a ModelResult per evaluated model")
        for label in labels:
            if not label.strip():
                raise RepicError("a model label is empty; give every model a short label such as 'sft'")
            if labels.count(label) > 1:
                raise RepicError(f"model label {label!r} is used twice; give every model its own label")
        for model in self.models:
            for key, result in model.captions.items():
                _check_evaluation(key, f"model {model.label!r}")
                for mode in SCORER_MODES:
                    _check_scores(result.scores(mode), f"model {model.label!r}, {key}, {mode} scores")
                if result.absent_named is not None:
                    _check_scores(result.absent_named, f"model {model.label!r}, {key}, absent_named")
            for name, scores in (("recognition", model.recognition), ("localization", model.localization)):
                if scores is not None:
                    _check_scores(scores, f"model {model.label!r}, {name}")
        for stage, seconds in self.timings.items():
            _check_seconds(seconds, f"timing of stage {stage!r}")
        if self.wall_seconds is not None:
            _check_seconds(self.wall_seconds, "the wall-clock timing")
        if len(set(self.seeds)) != len(self.seeds):
            raise RepicError(f"training seeds {list(self.seeds)} repeat a seed; give each seed once")
        for label, runs in self.per_seed.items():
            if label not in labels:
                raise RepicError(f"per-seed results of {label!r}, a model the results do not list")
            if len(runs) != len(self.seeds):
                raise RepicError(
                    f"model {label!r} has results for {len(runs)} seeds, the run has {len(self.seeds)}; "
                    "give one per training seed"
                )
        for label, cells in self.summaries.items():
            if label not in labels:
                raise RepicError(f"summaries of {label!r}, a model the results do not list")
            for cell in cells:
                if cell not in CELLS:
                    raise RepicError(f"model {label!r}: unknown cell {cell!r}; use one of {', '.join(CELLS)}")

        # Configs come from dataclasses and YAML: held as plain JSON values from here on (paths become
        # strings, anything else that JSON cannot hold is refused now, not when the report is written).
        for name, config in self.configs.items():
            if not isinstance(config, Mapping):
                raise RepicError(
                    f"config {name!r} must be a mapping of settings, not {type(config).__name__}"
                )
        plain = json.loads(json.dumps(dict(self.configs), default=_config_value))
        object.__setattr__(self, "configs", plain)

    @property
    def labels(self) -> list[str]:
        """The model labels, in table order."""
        return [model.label for model in self.models]

    @property
    def evaluations(self) -> list[str]:
        """The caption evaluations any model has, in ``EVALUATIONS`` order."""
        present = {key for model in self.models for key in model.captions}
        return [key for key in EVALUATIONS if key in present]

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` document (rates as fractions in [0, 1])."""
        return {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "title": self.title,
            "created": self.created,
            "machine": self.machine,
            "models": [_model_to_json(model) for model in self.models],
            "timings": dict(self.timings),
            **({} if self.wall_seconds is None else {"wall_seconds": self.wall_seconds}),
            "commands": list(self.commands),
            "configs": copy.deepcopy(dict(self.configs)),  # a caller editing the document leaves us alone
            "checks": [asdict(check) for check in self.checks],
            "seeds": list(self.seeds),
            "per_seed": {
                label: [{"seed": seed, **_model_to_json(model)} for seed, model in zip(self.seeds, runs, strict=True)]
                for label, runs in self.per_seed.items()
            },
            "summaries": {
                label: {cell: asdict(summary) for cell, summary in cells.items()}
                for label, cells in self.summaries.items()
            },
        }

    @classmethod
    def from_json(cls, document: Any, where: str = "results") -> Results:
        """Read a ``results.json`` document; ``where`` (a file name) prefixes every error message."""
        obj = _object(document, where)
        if obj.get("format") != RESULTS_FORMAT:
            raise RepicError(
                f"{where} is not a repic results file (its 'format' is {obj.get('format')!r}, expected "
                f"{RESULTS_FORMAT!r}); pass the results.json of a repic report"
            )
        version = obj.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= RESULTS_VERSION:
            raise RepicError(
                f"{where} has results format version {version!r}; this repic reads versions 1 to "
                f"{RESULTS_VERSION}; upgrade repic to read files from newer releases"
            )
        models = _typed(obj, "models", list, where)
        return cls(
            models=[_model_from_json(item, f"{where}: models[{i}]") for i, item in enumerate(models)],
            title=_typed(obj, "title", str, where),
            timings={
                str(stage): _number(seconds, f"{where}: timings.{stage}")
                for stage, seconds in _typed(obj, "timings", dict, where).items()
            },
            wall_seconds=None if obj.get("wall_seconds") is None else _number(obj["wall_seconds"], f"{where}: wall_seconds"),
            commands=[
                _string(c, f"{where}: commands[{i}]")
                for i, c in enumerate(_typed(obj, "commands", list, where))
            ],
            configs={
                str(name): _object(config, f"{where}: configs.{name}")
                for name, config in _typed(obj, "configs", dict, where).items()
            },
            checks=[
                _check_from_json(item, f"{where}: checks[{i}]")
                for i, item in enumerate(_typed(obj, "checks", list, where) if version >= 2 else [])
            ],
            machine=_typed(obj, "machine", str, where),
            created=_typed(obj, "created", str, where),
            **(_seed_fields(obj, where) if version >= 3 else {}),
        )


def read_results(path: str | os.PathLike) -> Results:
    """Read a ``results.json`` file written by ``write_report`` (or by ``Results.to_json``)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RepicError(f"results file {path} does not exist; pass the results.json of a report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RepicError(f"cannot read {path}: {exc}; check the file and its permissions") from None
    except json.JSONDecodeError as exc:
        raise RepicError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); write the report again"
        ) from None
    return Results.from_json(document, str(path))


def _check_evaluation(key: str, where: str) -> None:
    if key not in EVALUATIONS:
        raise RepicError(f"{where}: unknown caption evaluation {key!r}; use one of {', '.join(EVALUATIONS)}")


def _check_scores(record: Any, where: str) -> None:
    """Every rate of a score record lies in [0, 1] and every count is >= 0 (a record built by hand may not)."""
    for spec in fields(record):
        value = getattr(record, spec.name)
        if value is None:
            continue
        if spec.type == "int" and value < 0:
            raise RepicError(f"{where}: {spec.name} is {value}, a count cannot be negative; fix the scores")
        if spec.type != "int" and not 0 <= value <= 1:
            raise RepicError(
                f"{where}: {spec.name} is {value}, outside [0, 1]; rates are fractions, not percentages"
            )


def _config_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise RepicError(
        f"a config value of type {type(value).__name__} ({value!r}) cannot be written to results.json; "
        "convert it to a string, number, list or mapping"
    )


# ---------------------------------------------------------------------------------------- to JSON


def _model_to_json(model: ModelResult) -> dict[str, Any]:
    return {
        "label": model.label,
        "description": model.description,
        "captions": {key: _caption_to_json(result) for key, result in model.captions.items()},
        "recognition": None if model.recognition is None else asdict(model.recognition),
        "localization": None if model.localization is None else asdict(model.localization),
    }


def _caption_to_json(result: CaptionResult) -> dict[str, Any]:
    absent = result.absent_named
    return {
        "rows": result.rows,
        "official": asdict(result.official),
        "strict": asdict(result.strict),
        # The rate is written for people reading the file; the reader recomputes it from the counts.
        "absent_named": None if absent is None else {**asdict(absent), "rate": absent.rate},
        **{
            name: None if count is None else {**asdict(count), "rate": count.rate}
            for name, count in (("retrieval_top1", result.retrieval_top1), ("retrieval_recall", result.retrieval_recall))
        },
    }


# -------------------------------------------------------------------------------------- from JSON


def _model_from_json(item: Any, where: str) -> ModelResult:
    obj = _object(item, where)
    captions = _typed(obj, "captions", dict, where)
    for key in captions:
        _check_evaluation(key, f"{where}.captions")
    recognition, localization = obj.get("recognition"), obj.get("localization")
    return ModelResult(
        label=_typed(obj, "label", str, where),
        description=_typed(obj, "description", str, where),
        captions={
            key: _caption_from_json(value, f"{where}.captions.{key}") for key, value in captions.items()
        },
        recognition=None
        if recognition is None
        else _record(RecognitionScores, recognition, f"{where}.recognition"),
        localization=None
        if localization is None
        else _record(LocalizationScores, localization, f"{where}.localization"),
    )


def _caption_from_json(item: Any, where: str) -> CaptionResult:
    obj = _object(item, where)
    absent = obj.get("absent_named")
    return CaptionResult(
        rows=_int(obj.get("rows"), f"{where}.rows"),
        official=_record(NameScores, obj.get("official"), f"{where}.official"),
        strict=_record(NameScores, obj.get("strict"), f"{where}.strict"),
        absent_named=None if absent is None else _record(Count, absent, f"{where}.absent_named"),
        **{
            name: None if obj.get(name) is None else _record(Count, obj[name], f"{where}.{name}")
            for name in ("retrieval_top1", "retrieval_recall")
        },
    )


def _record(cls: type, item: Any, where: str) -> Any:
    """A score dataclass from its JSON object, each field checked against its annotation."""
    obj = _object(item, where)
    values = {}
    for spec in fields(cls):
        if spec.name not in obj:
            raise RepicError(f"{where} has no {spec.name!r}; write the report again or add the field")
        value, here = obj[spec.name], f"{where}.{spec.name}"
        if spec.type == "int":
            values[spec.name] = _int(value, here)
        elif spec.type == "float":
            values[spec.name] = _number(value, here)
        else:  # "float | None": a rate that had nothing to count
            values[spec.name] = None if value is None else _number(value, here)
    return cls(**values)


def _check_from_json(item: Any, where: str) -> ClaimCheck:
    obj = _object(item, where)
    holds = obj.get("holds")
    if not isinstance(holds, bool):
        raise RepicError(f"{where}: 'holds' must be true or false, found {json.dumps(holds)[:60]}")
    return ClaimCheck(
        statement=_typed(obj, "statement", str, where),
        repic=_typed(obj, "repic", str, where),
        other=_typed(obj, "other", str, where),
        holds=holds,
        note=_typed(obj, "note", str, where) if "note" in obj else "",  # files written before it have none
        verdict=_typed(obj, "verdict", str, where) if "verdict" in obj else "",
        gaps=tuple(_number(g, f"{where}.gaps[{i}]") for i, g in enumerate(obj.get("gaps") or [])),
        low=None if obj.get("low") is None else _number(obj["low"], f"{where}.low"),
        high=None if obj.get("high") is None else _number(obj["high"], f"{where}.high"),
    )


def _seed_fields(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``seeds``, ``per_seed`` and ``summaries`` of a version 3 document."""
    seeds = tuple(_int(seed, f"{where}: seeds[{i}]") for i, seed in enumerate(_typed(obj, "seeds", list, where)))
    per_seed = {}
    for label, runs in _typed(obj, "per_seed", dict, where).items():
        if not isinstance(runs, list):
            raise RepicError(f"{where}: per_seed.{label} must be a list, found {json.dumps(runs)[:60]}")
        per_seed[str(label)] = [_model_from_json(run, f"{where}: per_seed.{label}[{i}]") for i, run in enumerate(runs)]
    summaries = {
        str(label): {
            str(cell): _summary_from_json(summary, f"{where}: summaries.{label}.{cell}")
            for cell, summary in _object(cells, f"{where}: summaries.{label}").items()
        }
        for label, cells in _typed(obj, "summaries", dict, where).items()
    }
    return {"seeds": seeds, "per_seed": per_seed, "summaries": summaries}


def _summary_from_json(item: Any, where: str) -> SeedSummary:
    obj = _object(item, where)
    values = obj.get("values")
    if not isinstance(values, list) or not values:
        raise RepicError(f"{where}.values must be a non-empty list of numbers, found {json.dumps(values)[:60]}")
    numbers = {
        name: _number(obj.get(name), f"{where}.{name}")
        for name in ("mean", "std", "minimum", "maximum", "low", "high", "level")
    }
    return SeedSummary(values=tuple(_number(v, f"{where}.values[{i}]") for i, v in enumerate(values)), **numbers)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RepicError(f"{where} must be a JSON object, found {type(value).__name__}")
    return value


def _typed(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        names = {dict: "an object", list: "a list", str: "a string"}
        raise RepicError(f"{where}: {key!r} must be {names[kind]}, found {json.dumps(value)[:60]}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RepicError(f"{where} must be a string, found {json.dumps(value)[:60]}")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RepicError(f"{where} must be a whole number, found {json.dumps(value)[:60]}")
    return value


def _check_seconds(seconds: Any, what: str) -> None:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
        raise RepicError(f"{what} must be a number of seconds >= 0, not {seconds!r}")


def _number(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise RepicError(f"{where} must be a finite number, found {json.dumps(value)[:60]}")
    return float(value)
