"""What ``repic app`` and ``repic serve`` open when told nothing: the latest demo run, else what ships.

- **Model**: ``repic-demo/runs/repic-s<S>/final`` (the RePIC model of the ``repic demo`` run in the
  current folder, or in ``--run DIR``; its lowest training seed S where it trained several) when it is
  there, else the tiny RePIC model shipped in the package (``tiny-repic``), which names the built-in
  world's concepts out of the box.
- **Database**: ``repic-concepts/database.json`` in the current folder. The first time it does not exist,
  it is made as a copy of the demo's world database (``<run>/world/database.json``) or, without a
  demo, of the concept database shipped in the package (``repic/assets/concepts``, made with
  ``repic data synth``). A copy, because the app and the server write to their database: neither the
  demo's folder nor the installed package is ever edited.
- **Retrieval**: for those built-in concepts, the shipped tiny base's own vision tower (``tower:``), the
  embedder the demo retrieves with; for a database the user names, the offline colour embedder.

The demo's folder layout is read as plain paths; nothing of the demo's code is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..concepts.database import ConceptDatabase, load_database
from ..errors import RepicError
from ..locking import locked
from ..records import Concept
from ..shipped import shipped_base_path, shipped_repic_path

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


def demo_run(run: Path | None = None, cwd: Path | None = None) -> Path:
    """The demo run folder to take defaults from: ``run`` (``--run``), else ``./repic-demo``."""
    if run is not None:
        folder = Path(run).expanduser().absolute()
        if not folder.is_dir():
            raise RepicError(f"--run {folder} is not a folder; give the folder a `repic demo --out` wrote")
        return folder
    return (cwd or Path.cwd()) / DEMO_FOLDER


def default_model(run: Path | None = None, cwd: Path | None = None) -> Chosen:
    """The demo run's RePIC model (its lowest training seed), else the tiny RePIC model shipped with repic."""
    runs = demo_run(run, cwd) / DEMO_RUNS
    finished = [final for final in runs.glob(DEMO_MODEL) if _is_model(final)] if runs.is_dir() else []
    if finished:
        first = min(finished, key=lambda final: _seed_of(final.parent.name))
        return Chosen(first, f"the RePIC model of the `repic demo` run (training seed {_seed_of(first.parent.name)})")
    if run is not None:
        raise RepicError(f"--run {run} holds no finished RePIC model (runs/repic-s*/final); let `repic demo` finish "
                         "there, or name a model")
    return Chosen(shipped_repic_path(), "the tiny RePIC model shipped with repic (`repic demo` trains your own)")


def known_models(run: Path | None = None, cwd: Path | None = None) -> list[str]:
    """Models to offer in a picker: the shipped tiny models and each demo run's final model."""
    runs = demo_run(run, cwd) / DEMO_RUNS
    found = [str(shipped_repic_path()), str(shipped_base_path())]
    for final in sorted(runs.glob("*/final")) if runs.is_dir() else []:
        if _is_model(final):
            found.append(str(final))
    return found


def default_embedder() -> str:
    """Retrieval for the built-in world's concepts: the shipped base's vision tower, as the demo retrieves."""
    return f"tower:{shipped_base_path()}"


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


def default_database(cwd: Path | None = None, run: Path | None = None) -> Chosen:
    """``repic-concepts/database.json`` in ``cwd``, made from the demo's or the shipped concepts if missing."""
    root = cwd or Path.cwd()
    target = root / DEFAULT_DATABASE
    demo = demo_run(run, root) / DEMO_DATABASE
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
