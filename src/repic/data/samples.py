"""Read and write RePIC training samples in the official file format, and summarise a sample set.

The official format is a JSON list (or JSONL, one object a line) of::

    {"image": "rel/path.png" | ["ref.png", ..., "query.png"],
     "problem": "...",
     "solution": "yes" | "<bo>" | ["<bo>", "<kim>"] | [x1, y1, x2, y2],
     "accu_reward_method": "yes_no" | "iou" | "yes_no_name" | "yes_no_name_multi"}

Choices made here:

* Files are read unchanged: either task spelling is accepted (``repic.tasks``), under
  ``accu_reward_method`` or ``task``; unknown fields are kept in ``Sample.extra`` and written back.
  A string solution of an ``ict_multi`` row (the official reward treats it as a one-name list) becomes
  that one-name list.
* Image paths in the file are relative to an *image root*: the ``image_root`` argument (``--image-root``),
  else the ``image_root`` of a ``build.json`` beside the file or one folder up (a build's ``eval/`` files
  share the build's root), else the file's own folder. Loaded samples carry absolute paths, so what
  consumes them never needs the root again; ``write_samples`` makes them relative to a root again.
* Every row is validated before anything is returned, and all problems of one kind are reported at
  once (every missing image, not just the first) with the file and row, so one fix-and-rerun suffices.
* Writes are atomic; ``.jsonl`` gives JSONL, ``.json`` a JSON list.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..concepts.database import image_problem
from ..errors import RepicError
from ..records import Sample
from ..tasks import OFFICIAL_NAMES, TASKS, normalize_task

BUILD_MANIFEST = "build.json"
_TASK_KEYS = ("accu_reward_method", "task")
_REQUIRED = ("image", "problem", "solution")


# --- reading ---------------------------------------------------------------------------------------------


def load_samples(
    path: str | os.PathLike, image_root: str | os.PathLike | None = None, *, decode_images: bool = False
) -> list[Sample]:
    """Read an official RePIC sample file (JSON list or JSONL); images resolved to absolute paths.

    Every image must exist; with ``decode_images`` (``repic data inspect``) every one is also opened and
    decoded, so a truncated file or a text file named ``.png`` is reported here, not in the middle of a run.
    """
    path = Path(path)
    rows = read_rows(path)
    root = resolve_image_root(path, image_root)
    samples = [_parse_row(row, f"{path} row {number}") for number, row in rows]
    _check_images_exist(path, samples, root, explicit_root=image_root is not None)
    if decode_images:
        _check_images_decode(path, samples, root)
    for sample in samples:
        sample.images = [str(root / image) for image in sample.images]
    return samples


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """``(row number, parsed JSON)`` for each row: list items of a ``.json`` file, lines of anything else."""
    if path.is_dir():
        raise RepicError(f"sample file {path} is a folder; give a .json list or .jsonl file")
    if not path.is_file():
        raise RepicError(f"sample file {path} does not exist; check the path (a .json list or .jsonl file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RepicError(f"cannot read sample file {path}: {exc}; it must be UTF-8 JSON or JSONL") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RepicError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if not isinstance(data, list):
            raise RepicError(f"{path} must hold a JSON list of samples, found a {type(data).__name__}")
        return list(enumerate(data, start=1))
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise RepicError(
                f"{path} line {number} is not valid JSON ({exc.msg}); one object per line"
            ) from exc
    return rows


def resolve_image_root(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> Path:
    """The folder a sample file's image paths are relative to (see the module docstring for the order)."""
    path = Path(path)
    if image_root is not None:
        root = Path(image_root).expanduser()
        if not root.is_dir():
            raise RepicError(
                f"--image-root {root} is not a folder; pass the folder the image paths start from"
            )
        return root.resolve()
    for folder in (path.parent, path.parent.parent):
        manifest = folder / BUILD_MANIFEST
        if manifest.is_file():
            return _root_from_manifest(manifest)
    return path.parent.resolve()


def _root_from_manifest(manifest: Path) -> Path:
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["image_root"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RepicError(
            f"{manifest} has no readable image_root ({exc}); fix the file or pass --image-root"
        ) from exc
    # A relative root is relative to the manifest's folder, so a build and its collection can move together.
    return (manifest.parent / str(recorded)).resolve()


def _parse_row(row: Any, where: str) -> Sample:
    if not isinstance(row, dict):
        raise RepicError(f"{where}: a sample must be a JSON object, found {type(row).__name__}")
    missing = [key for key in _REQUIRED if key not in row]
    task_key = next((key for key in _TASK_KEYS if key in row), None)
    if task_key is None:
        missing.append("accu_reward_method")
    if missing:
        raise RepicError(
            f"{where}: missing {', '.join(missing)}; every sample needs image, problem, solution and "
            f"accu_reward_method ({', '.join(OFFICIAL_NAMES.values())})"
        )
    task = normalize_task(row[task_key], where=where)
    images = _parse_images(row["image"], where)
    problem = row["problem"]
    if not isinstance(problem, str) or not problem.strip():
        raise RepicError(f"{where}: problem must be a non-empty string")
    solution = check_solution(task, row["solution"], where)
    extra = {key: value for key, value in row.items() if key not in (*_REQUIRED, task_key)}
    return Sample(task=task, images=images, problem=problem, solution=solution, extra=extra)


def _parse_images(value: Any, where: str) -> list[str]:
    images = [value] if isinstance(value, str) else value
    if not isinstance(images, list) or not images:
        raise RepicError(
            f"{where}: image must be a path or a non-empty list of paths (every sample needs one)"
        )
    if not all(isinstance(image, str) and image.strip() for image in images):
        raise RepicError(f"{where}: every image entry must be a non-empty path string, got {value!r}")
    return list(images)


def check_solution(task: str, solution: Any, where: str) -> Any:
    """Validate a solution for its task and return it (an ``ict_multi`` string becomes a one-name list)."""
    if task == "oct":
        if not isinstance(solution, str) or solution.strip().rstrip(".").lower() not in ("yes", "no"):
            raise RepicError(f'{where}: an oct (yes_no) solution must be "yes" or "no", got {solution!r}')
        return solution
    if task == "vlt":
        check_box(solution, where)
        return solution
    if task == "ict":
        if not isinstance(solution, str) or not solution.strip():
            raise RepicError(f'{where}: an ict (yes_no_name) solution must be the concept name, e.g. "<bo>"')
        return solution
    names = [solution] if isinstance(solution, str) else solution
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise RepicError(
            f"{where}: an ict_multi (yes_no_name_multi) solution must be a non-empty list of names, "
            f'e.g. ["<bo>", "<kim>"], got {solution!r}'
        )
    return names


def check_box(box: Any, where: str) -> None:
    """Raise unless ``box`` is ``[x1, y1, x2, y2]``: four finite non-negative numbers, x1 < x2, y1 < y2."""
    numbers = isinstance(box, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box
    )
    if not numbers or len(box) != 4:
        raise RepicError(f"{where}: a vlt (iou) solution must be [x1, y1, x2, y2], four numbers; got {box!r}")
    x1, y1, x2, y2 = box
    if min(box) < 0 or x1 >= x2 or y1 >= y2:
        raise RepicError(
            f"{where}: box {list(box)} is inverted, empty or negative; "
            "write it as [left, top, right, bottom] in pixels with left < right and top < bottom"
        )


def _check_images_decode(path: Path, samples: Sequence[Sample], root: Path) -> None:
    images = sorted({image for sample in samples for image in sample.images})
    broken = [f"{image} {problem[1]}" for image in images if (problem := image_problem(root / image))]
    if broken:
        listed = "\n  ".join(broken)
        raise RepicError(
            f"{path}: {len(broken)} image(s) cannot be used; replace or remove them:\n  {listed}"
        )


def _check_images_exist(path: Path, samples: Sequence[Sample], root: Path, *, explicit_root: bool) -> None:
    missing = sorted({image for sample in samples for image in sample.images if not (root / image).is_file()})
    if missing:
        source = "--image-root" if explicit_root else f"from {BUILD_MANIFEST} or the file's folder"
        listed = "\n  ".join(missing)
        raise RepicError(
            f"{path}: {len(missing)} image file(s) not found under the image root {root} ({source}); pass "
            f"the folder these paths are relative to with --image-root DIR. Missing:\n  {listed}"
        )


# --- writing ---------------------------------------------------------------------------------------------


def sample_to_row(sample: Sample, image_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The official JSON object of a sample: ``image`` a string for one image, a list otherwise."""
    images = [_relative_image(image, image_root) for image in sample.images]
    if not images:
        raise RepicError(f"a {sample.task} sample has no image; every sample needs at least one")
    row: dict[str, Any] = {
        "image": images[0] if len(images) == 1 else images,
        "problem": sample.problem,
        "solution": sample.solution,
        "accu_reward_method": OFFICIAL_NAMES[normalize_task(sample.task)],
    }
    row.update({key: value for key, value in sample.extra.items() if key not in row})
    return row


def write_samples(
    path: str | os.PathLike, samples: Iterable[Sample], *, image_root: str | os.PathLike | None = None
) -> Path:
    """Write samples in the official format, atomically; JSONL for ``.jsonl``, a JSON list for ``.json``.

    With ``image_root``, absolute image paths inside it are written relative to it.
    """
    path = Path(path)
    rows = [sample_to_row(sample, image_root) for sample in samples]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return atomic_write_jsonl(path, rows)
    if suffix == ".json":
        return atomic_write_json(path, rows)
    raise RepicError(
        f"cannot tell the format of {path}: name it *.jsonl (one sample a line) or *.json (a list)"
    )


def _relative_image(image: str, image_root: str | os.PathLike | None) -> str:
    if image_root is None or not Path(image).is_absolute():
        return image
    try:
        return Path(image).relative_to(Path(image_root).resolve()).as_posix()
    except ValueError:
        return image  # outside the root: an absolute path still resolves against any root


# --- summary ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskMixRow:
    """One line of a task mix report."""

    task: str
    official: str
    count: int
    share: float  # of all samples, 0..1
    images_per_sample: float
    detail: str  # task-specific balance: yes/no split, names per caption


def task_mix(samples: Sequence[Sample]) -> list[TaskMixRow]:
    """Counts per task (all four, in canonical order) with the balance that matters for each.

    >>> from repic.records import Sample
    >>> rows = task_mix([Sample("oct", ["a", "b"], "q", "yes"), Sample("oct", ["a", "c"], "q", "no"),
    ...                  Sample("vlt", ["c"], "q", [0, 0, 5, 5])])
    >>> [(r.task, r.count, round(r.share, 2), r.detail) for r in rows[:2]]
    [('oct', 2, 0.67, 'yes 1 / no 1'), ('vlt', 1, 0.33, '')]
    """
    by_task: dict[str, list[Sample]] = {task: [] for task in TASKS}
    for sample in samples:
        by_task[normalize_task(sample.task)].append(sample)
    total = max(1, len(samples))
    rows = []
    for task, group in by_task.items():
        images = sum(len(s.images) for s in group) / len(group) if group else 0.0
        rows.append(
            TaskMixRow(
                task, OFFICIAL_NAMES[task], len(group), len(group) / total, images, _detail(task, group)
            )
        )
    return rows


def _detail(task: str, group: Sequence[Sample]) -> str:
    if not group:
        return ""
    if task == "oct":
        answers = Counter(str(s.solution).strip().rstrip(".").lower() for s in group)
        return f"yes {answers['yes']} / no {answers['no']}"
    if task == "ict_multi":
        sizes = Counter(len(s.solution) for s in group)
        return "names " + ", ".join(f"{n}:{sizes[n]}" for n in sorted(sizes))
    return ""
