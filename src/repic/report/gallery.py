"""An HTML gallery of captions: each held-out query image, its reference images, one column per model.

The page is self-contained in the sense that matters for sharing a report folder: its style is inline
and every image is a PNG thumbnail copied next to it (``gallery/0001.png`` ...), never a link back into
the data folder and never base64 (which would make the page megabytes of text and the images
un-saveable). An image used by many rows (a concept's reference) is copied once.

Concept names in captions are marked: green (``<mark class="present">``) when the concept is in the
image, red (``<mark class="absent">``) when the caption names a concept of the gallery that is not.
Names are found the way the strict scorer reads them (``repic.evaluate.metrics``): whole names,
case-insensitive, angle brackets optional, the words of a name joined by spaces, underscores, hyphens or
nothing, the longest name winning at a position, and never the closing form ``</bo>``. All text from
the data (captions, names, paths, the title) is HTML-escaped; a caption is data, not markup.
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import RepicError
from ..records import strip_tag
from .results import EVALUATIONS

GALLERY_IMAGES = "gallery"  # the folder, next to the page, that holds the thumbnails
QUERY_PIXELS = 320  # longest side of a query thumbnail; smaller images are kept as they are
REFERENCE_PIXELS = 160
_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass(frozen=True)
class GalleryReference:
    """A reference image shown to the model and the concept tag it stands for (``"<bo>"``)."""

    image: Path
    tag: str


@dataclass(frozen=True)
class GalleryRow:
    """One query: its image, the tags truly in it, the references shown, and each model's caption.

    ``captions`` maps model label to caption; ``evaluation`` (an ``EVALUATIONS`` key or any label)
    groups rows under a heading.
    """

    query: Path
    concepts: Sequence[str]
    references: Sequence[GalleryReference]
    captions: Mapping[str, str]
    evaluation: str = ""
    question: str = ""


@dataclass
class _Thumbnails:
    """Copies each source image once into the gallery folder, numbered by first use."""

    folder: Path
    written: dict[tuple[Path, int], str] = field(default_factory=dict)

    def add(self, source: Path, pixels: int, where: str) -> str:
        key = (Path(source).resolve(), pixels)
        if key not in self.written:
            name = f"{len(self.written) + 1:04d}.png"
            atomic_write_bytes(self.folder / name, _thumbnail_png(Path(source), pixels, where))
            self.written[key] = f"{GALLERY_IMAGES}/{name}"
        return self.written[key]


def _thumbnail_png(source: Path, pixels: int, where: str) -> bytes:
    try:
        with Image.open(source) as image:
            image.load()
            thumbnail = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except FileNotFoundError:
        raise RepicError(
            f"{where}: image {source} does not exist; fix the path or leave the row out"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise RepicError(
            f"{where}: cannot read image {source} ({exc}); replace it with a PNG or JPEG"
        ) from None
    thumbnail.thumbnail((pixels, pixels))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="PNG")
    return buffer.getvalue()


def write_gallery(
    folder: str | os.PathLike,
    rows: Sequence[GalleryRow],
    models: Sequence[str],
    *,
    descriptions: Mapping[str, str] | None = None,
    title: str = "Captions on held-out concepts",
) -> Path:
    """Write ``gallery.html`` and its thumbnails into ``folder`` (a staging folder); return the page's path.

    ``models`` orders the caption columns; a row's caption for a model not in ``models`` is an error
    rather than a caption silently left out. ``descriptions`` adds a line under each column's label.
    """
    folder = Path(folder)
    unknown = sorted({label for row in rows for label in row.captions if label not in models})
    if unknown:
        raise RepicError(
            f"gallery rows have captions of models {', '.join(map(repr, unknown))} that are not among the "
            f"report's models ({', '.join(models)}); add their results or drop those captions"
        )
    (folder / GALLERY_IMAGES).mkdir(parents=True, exist_ok=True)
    thumbnails = _Thumbnails(folder / GALLERY_IMAGES)
    pool = sorted({tag for row in rows for tag in [*row.concepts, *(ref.tag for ref in row.references)]})
    highlighter = NameHighlighter(pool)
    sections: dict[str, list[str]] = {}
    for number, row in enumerate(rows, start=1):
        section = EVALUATIONS.get(row.evaluation, row.evaluation)
        sections.setdefault(section, []).append(
            _row_html(row, models, thumbnails, highlighter, f"gallery row {number}")
        )
    page = _page(title, sections, models, descriptions or {})
    return atomic_write_text(folder / "gallery.html", page)


class NameHighlighter:
    """Marks the names of a pool of concept tags in text, as the strict scorer finds them (module docs)."""

    def __init__(self, pool: Iterable[str]):
        patterns = {_name_pattern(tag) for tag in pool if _name_key(tag)}
        # Longest first, so "captain america" wins over "america" at the same position.
        alternatives = sorted(patterns, key=lambda pattern: (-len(pattern), pattern))
        self.regex = (
            re.compile(rf"(?<![\w/])<?(?:{'|'.join(alternatives)})>?(?!\w)", re.IGNORECASE)
            if alternatives
            else None
        )

    def html(self, text: str, present: Iterable[str]) -> str:
        """``text`` HTML-escaped, each pool name in a ``<mark>``: class ``present`` for ``present`` tags.

        >>> NameHighlighter(["<bo>", "<kim>"]).html("<bo> & Kim, not </bo>", present=["<bo>"])
        '<mark class="present">&lt;bo&gt;</mark> &amp; <mark class="absent">Kim</mark>, not &lt;/bo&gt;'
        """
        if self.regex is None:
            return html.escape(text)
        present_keys = {_name_key(tag) for tag in present}
        parts, end = [], 0
        for match in self.regex.finditer(text):
            kind = "present" if _name_key(match.group()) in present_keys else "absent"
            parts += [
                html.escape(text[end : match.start()]),
                f'<mark class="{kind}">{html.escape(match.group())}</mark>',
            ]
            end = match.end()
        parts.append(html.escape(text[end:]))
        return "".join(parts)


def _name_key(name: str) -> str:
    """``<Black_Widow>`` -> ``blackwidow``: the form two spellings of one name share."""
    return _SEPARATORS.sub("", strip_tag(name.strip())).lower()


def _name_pattern(tag: str) -> str:
    words = [re.escape(word) for word in _SEPARATORS.split(strip_tag(tag.strip())) if word]
    return r"[\s_\-]*".join(words)


# ------------------------------------------------------------------------------------------ HTML


def _row_html(
    row: GalleryRow, models: Sequence[str], thumbnails: _Thumbnails, highlighter: NameHighlighter, where: str
) -> str:
    esc = html.escape
    query_path = Path(row.query)
    query = thumbnails.add(query_path, QUERY_PIXELS, f"{where}, query")
    present = ", ".join(row.concepts) or "none"
    query_cell = (
        f'<td class="query"><img src="{esc(query)}" alt="query image {esc(query_path.name)}">'
        f'<div class="path">{esc(str(query_path))}</div><div>in the image: <b>{esc(present)}</b></div>'
        + (f'<div class="question">{esc(row.question)}</div>' if row.question else "")
        + "</td>"
    )
    figures = []
    for number, reference in enumerate(row.references, start=1):
        image = thumbnails.add(Path(reference.image), REFERENCE_PIXELS, f"{where}, reference {number}")
        kind = "present" if reference.tag in row.concepts else "absent"
        figures.append(
            f'<figure><img src="{esc(image)}" alt="reference image of {esc(reference.tag)}">'
            f'<figcaption class="{kind}">{esc(reference.tag)}</figcaption></figure>'
        )
    reference_cell = f'<td class="references">{"".join(figures) or "none"}</td>'
    caption_cells = [
        f'<td class="caption">{highlighter.html(row.captions[label], row.concepts)}</td>'
        if label in row.captions
        else '<td class="caption missing">no caption</td>'
        for label in models
    ]
    return f"<tr>{query_cell}{reference_cell}{''.join(caption_cells)}</tr>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.5em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
th .description { font-weight: normal; font-size: 0.85em; color: #555; }
td.query { width: 240px; font-size: 0.85em; }
td.query img { width: 224px; height: auto; display: block; }
td.references { width: 230px; }
figure { display: inline-block; margin: 0 0.4em 0.4em 0; text-align: center; }
figure img { width: 96px; height: auto; display: block; }
figcaption { font-size: 0.85em; }
figcaption.absent { color: #a00; }
.path { color: #666; word-break: break-all; }
.question { font-style: italic; margin-top: 0.3em; }
td.caption { white-space: pre-wrap; line-height: 1.4; }
td.missing { color: #888; font-style: italic; }
mark.present { background: #b7f0b1; }
mark.absent { background: #ffb3b3; }
"""


def _page(
    title: str, sections: Mapping[str, list[str]], models: Sequence[str], descriptions: Mapping[str, str]
) -> str:
    esc = html.escape
    headers = "".join(
        f"<th>{esc(label)}"
        + (f'<div class="description">{esc(descriptions[label])}</div>' if descriptions.get(label) else "")
        + "</th>"
        for label in models
    )
    body = []
    for section, rows in sections.items():
        if section:
            body.append(f"<h2>{esc(section)} ({len(rows)} {'query' if len(rows) == 1 else 'queries'})</h2>")
        body.append(
            f"<table><thead><tr><th>query</th><th>references</th>{headers}</tr></thead>"
            f"<tbody>\n{chr(10).join(rows)}\n</tbody></table>"
        )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n"
        '<p>Concept names in captions: <mark class="present">in the image</mark>, '
        '<mark class="absent">named but not in the image</mark>. Reference names in red are concepts '
        "shown to the model that are not in the query image.</p>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
