"""RePIC's own captioning sets (``oyt9306/RePIC``): one query template file
``data/query_tot/<set>_query_templates.json`` (``{"./data/<set>/<subject>/<n>.jpg": ["<subject>", ...]}``) and
the set's own database ``data/database_tot/database_<set>[s]/database.json``. Each set is scored against its
own database (RePIC's ``data/README.md``), so SRC is one template file. See ``docs/bench/repic.md``.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import RepicError
from ...records import strip_tag
from ..rows import Manifest
from ._common import Importer
from .rap import CAPTION_QUESTION, read_database

SUFFIX = "_query_templates.json"


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    if src.is_dir():
        found = sorted(p.name for p in (src / "data" / "query_tot").glob(f"*{SUFFIX}"))
        raise RepicError(f"give one RePIC query template file, not the folder {src}: each set is scored against its "
                         f"own database. Found under data/query_tot/: {', '.join(found) or 'none'}")
    if not src.name.endswith(SUFFIX):
        raise RepicError(f"{src} is not a RePIC query template file: expected a file named <set>{SUFFIX}")
    repo = src.parent.parent.parent  # <repo>/data/query_tot/<set>_query_templates.json
    imp = Importer("repic", src, out, root=repo)
    name = src.name[: -len(SUFFIX)]
    database = next((p for p in (repo / "data" / "database_tot" / f"database_{name}" / "database.json",
                                 repo / "data" / "database_tot" / f"database_{name}s" / "database.json") if p.is_file()),
                    None)
    if database is not None:
        read_database(imp, database, database.parent, repo)
    else:
        imp.notes.append(f"no data/database_tot/database_{name}/database.json next to the templates: the concepts "
                         "have no reference images")
    templates = imp.read_json(src, dict, '{"./data/<set>/<subject>/<n>.jpg": ["<subject>", ...]}')
    for image, names in templates.items():
        where = f"{src.name}: {image}"
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RepicError(f"{where}: expected a list of the concept tags in the image, e.g. [\"<bo>\"]")
        tags = [imp.tag(n) for n in names]
        for raw, tag in zip(names, tags, strict=True):
            if tag not in imp.concepts:
                imp.concept(strip_tag(raw), "object", [])
        imp.row(kind="caption", question=CAPTION_QUESTION, answer=[], concepts=tags, source=where,
                image=imp.locate(image, repo, src.parent))
    return imp.finish()
