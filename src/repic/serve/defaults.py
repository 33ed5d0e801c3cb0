"""What ``repic app`` and ``repic serve`` open when told nothing: the latest demo run, else what ships.

- **Model**: ``repic-demo/runs/repic-s<S>/final`` (the RePIC model of the latest ``repic demo`` run in the
  current folder, its lowest training seed S where it trained several) when it is there, else the tiny base
  shipped in the package.
- **Database**: ``repic-concepts/database.json`` in the current folder. The first time it does not exist,
  it is made as a copy of the demo's world database (``repic-demo/world/database.json``) or, without a
  demo, of the concept database shipped in the package (``repic/assets/concepts``, made with
  ``repic data synth``). A copy, because the app and the server write to their database: neither the
  demo's folder nor the installed package is ever edited.

The demo's folder layout is read as plain paths; nothing of the demo's code is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..concepts.database import ConceptDatabase, load_database
from ..errors import RepicError
from ..locking import locked
from ..records import Concept
from ..shipped import shipped_base_path

DEMO_FOLDER = Path("repic-demo")
DEMO_RUNS = Path("runs")
DEMO_MODEL = "repic-s*/final"  # one RePIC model per training seed
DEMO_DATABASE = Path("world/database.json")
DEFAULT_DATABASE = Path("repic-concepts/database.json")
SHIPPED_CONCEPTS = Path(__file__).resolve().parent.parent / "assets" / "concepts" / "database.json"


@dataclass(frozen=True)
class Chosen:
    """A path and the words that say where it came from (printed at start-up)."""

    path: Path
    origin: str


def default_model(cwd: Path | None = None) -> Chosen:
    """The latest demo run's RePIC model in ``cwd`` (its lowest training seed), else the shipped tiny base."""
    runs = (cwd or Path.cwd()) / DEMO_FOLDER / DEMO_RUNS
    finished = [final for final in runs.glob(DEMO_MODEL) if _is_model(final)] if runs.is_dir() else []
    if finished:
        first = min(finished, key=lambda final: _seed_of(final.parent.name))
        return Chosen(first, f"the RePIC model of the latest `repic demo` run (training seed {_seed_of(first.parent.name)})")
    return Chosen(shipped_base_path(), "the tiny base shipped with repic (run `repic demo` for a RePIC model)")


def known_models(cwd: Path | None = None) -> list[str]:
    """Models to offer in a picker: the shipped tiny base and each ``repic demo`` run's final model here."""
    runs = (cwd or Path.cwd()) / DEMO_FOLDER / "runs"
    found = [str(shipped_base_path())]
    for final in sorted(runs.glob("*/final")) if runs.is_dir() else []:
        if _is_model(final):
            found.append(str(final))
    return found


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def _seed_of(run: str) -> int:
    """The training seed of a demo run folder's name (``repic-s12`` -> 12); a name without one sorts last."""
    digits = run.rsplit("-s", 1)[-1]
    return int(digits) if digits.isdigit() else 2**32


def shipped_concepts_path() -> Path:
    """The concept database shipped in the package (16 concepts of the built-in world, read-only)."""
    if not SHIPPED_CONCEPTS.is_file():
        raise RepicError(f"the shipped concept database is missing at {SHIPPED_CONCEPTS}; reinstall repic")
    return SHIPPED_CONCEPTS


def default_database(cwd: Path | None = None) -> Chosen:
    """``repic-concepts/database.json`` in ``cwd``, made from the demo's or the shipped concepts if missing."""
    root = cwd or Path.cwd()
    target = root / DEFAULT_DATABASE
    demo = root / DEMO_FOLDER / DEMO_DATABASE
    source = demo if demo.is_file() else shipped_concepts_path()
    if target.is_file():
        return Chosen(target, "the default concept database")
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target, what="database"):
        if not target.is_file():
            copy_database(source, target)
    what = "the demo's world" if source == demo else "the concepts shipped with repic"
    return Chosen(target, f"a new database with {what}")


def copy_database(source: Path, target: Path) -> ConceptDatabase:
    """A copy of the database at ``source`` written to ``target``, its images copied beside it."""
    original = load_database(source)
    copy = ConceptDatabase(target)
    for concept in original:
        copy.add(Concept(concept.tag, concept.name, concept.category, concept.info, list(concept.images),
                         dict(concept.extra)), store="copy")
    copy.save()
    return copy
