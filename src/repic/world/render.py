"""Pixels of the synthetic world: objects from sketches, backdrops, lighting and noise, PNG bytes.

``render(picture)`` turns a ``Picture`` (a backdrop, placed objects, lighting) into an RGB array and a
label map that says which object each pixel shows; every box and visibility figure is read from that
label map, so a box is the tight box of what was actually drawn, after rotation, clipping at the image
edge and occlusion by objects drawn later (COCO's convention: the visible extent).

Choices, and why:

- Objects are drawn at ``SUPERSAMPLE`` times their size with Pillow, outlined and rotated there, then
  averaged down, with premultiplied alpha (a plain average would bleed the transparent surroundings'
  colour into the edges). The dark outline is one final pixel wide at any object size, so silhouettes
  stay readable on any backdrop.
- A pixel belongs to an object when the object covers at least half of it (alpha >= 0.5, outline
  included); the boxes follow that mask, with ``x2``/``y2`` as exclusive pixel edges, so a box is always
  inside ``(0, 0, width, height)``.
- Lighting (a brightness factor and a gentle directional ramp) and Gaussian noise are applied to the
  whole picture after composition and never change the label map; the noise comes from its own seed, so
  the same picture rendered without objects shows exactly the backdrop the objects were drawn on.
- Everything is numpy and Pillow on the CPU, deterministic for a given picture; PNGs are encoded with
  fixed options and no metadata, so the same picture gives the same bytes.

``contact_sheet(collection, out_png)`` draws an overview of a collection (same-category concepts side by
side, scenes with their boxes) for a person to check the world at a glance.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..atomic import atomic_write_bytes
from ..data.collection import Collection
from ..records import Concept, Scene
from .silhouettes import COLORS, CONTRAST, INK, RGB, SHADE, TINT, Shape, sketch_object

SUPERSAMPLE = 3
OUTLINE: RGB = (28, 28, 32)

# Backdrop colours: muted, so the saturated objects stand out; light ones are used for reference views.
BACKDROP_COLORS: dict[str, RGB] = {
    "sky": (178, 204, 228),
    "sand": (226, 212, 176),
    "sage": (168, 190, 150),
    "stone": (176, 174, 168),
    "lavender": (204, 194, 222),
    "peach": (238, 206, 186),
    "cream": (240, 234, 218),
    "slate": (98, 108, 126),
    "moss": (92, 118, 84),
    "clay": (176, 128, 104),
}
LIGHT_BACKDROPS: tuple[str, ...] = ("sky", "sand", "stone", "lavender", "peach", "cream")
BACKDROP_KINDS: tuple[str, ...] = ("plain", "gradient", "mottled", "planks", "tiles")


@dataclass(frozen=True)
class Backdrop:
    """A background: ``kind`` (see ``BACKDROP_KINDS``), two colour names, a direction and a texture seed."""

    kind: str
    color: str
    second: str
    angle: float = 0.0  # radians, direction of a gradient
    seed: int = 0  # texture randomness (mottled blobs, plank and tile sizes)


@dataclass(frozen=True)
class Placement:
    """One object in a picture: what it is, where its centre is (pixels), how big and how turned."""

    category: str
    attributes: dict[str, str]
    center: tuple[float, float]
    size: float  # longest side of the unrotated object, pixels
    angle: float = 0.0  # degrees, counter-clockwise
    flip: bool = False


@dataclass(frozen=True)
class Lighting:
    brightness: float = 1.0
    ramp: float = 0.0  # brightness difference across the picture along ``ramp_angle``
    ramp_angle: float = 0.0
    noise: float = 0.0  # standard deviation of Gaussian pixel noise, in 0..255 units
    noise_seed: int = 0


@dataclass(frozen=True)
class Picture:
    """Everything needed to draw one image; objects are drawn in order, later ones on top."""

    width: int
    height: int
    backdrop: Backdrop
    placements: tuple[Placement, ...] = ()
    lighting: Lighting = field(default_factory=Lighting)


@dataclass
class Rendered:
    image: np.ndarray  # [H, W, 3] uint8
    labels: np.ndarray  # [H, W] int16: index of the placement shown by each pixel, -1 for the backdrop
    visible: list[float]  # per placement: visible mask pixels / mask pixels of the whole object

    def box(self, index: int) -> tuple[float, float, float, float] | None:
        """Tight box ``(x1, y1, x2, y2)`` of placement ``index``'s visible pixels; ``None`` if fully hidden."""
        ys, xs = np.nonzero(self.labels == index)
        if xs.size == 0:
            return None
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


# ------------------------------------------------------------------------------------------------ objects
def _resolve(color: RGB | str | None, body: RGB) -> RGB:
    if color is None:
        return body
    if color == SHADE:
        return tuple(int(c * 0.68) for c in body)
    if color == TINT:
        return tuple(int(c + (255 - c) * 0.45) for c in body)
    if color == CONTRAST:
        luma = 0.299 * body[0] + 0.587 * body[1] + 0.114 * body[2]
        return (110, 70, 28) if luma > 120 else (240, 226, 190)
    return color


def _pattern_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the accent colour shows, from unit coordinates ``u``, ``v`` of the unrotated object."""
    period = 0.16
    if kind == "stripes":
        return (v / period) % 1.0 < 0.5
    if kind == "checks":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    if kind == "dots":
        row = np.floor(v / period)
        du = (u / period + 0.5 * (row % 2)) % 1.0 - 0.5
        dv = (v / period) % 1.0 - 0.5
        return du * du + dv * dv < 0.3**2
    return np.zeros(u.shape, dtype=bool)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, fill, to_px, edge=None) -> None:
    """Draw one shape; ``edge`` (a colour) adds a thin outline, for accessories."""
    c = shape.coords
    edge_width = SUPERSAMPLE - 1 if edge is not None else 0
    if shape.kind == "ellipse":
        box = [to_px(c[0] - c[2], c[1] - c[3]), to_px(c[0] + c[2], c[1] + c[3])]
        draw.ellipse(box, fill=fill, outline=edge, width=edge_width)
    elif shape.kind == "ring":
        width = max(1, round(shape.width * to_px.scale))
        draw.ellipse(
            [to_px(c[0] - c[2], c[1] - c[3]), to_px(c[0] + c[2], c[1] + c[3])], outline=fill, width=width
        )
    elif shape.kind == "rect":
        draw.rectangle([to_px(c[0], c[1]), to_px(c[2], c[3])], fill=fill, outline=edge, width=edge_width)
    elif shape.kind == "rounded":
        radius = shape.width * to_px.scale
        draw.rounded_rectangle([to_px(c[0], c[1]), to_px(c[2], c[3])], radius=radius, fill=fill)
    elif shape.kind == "polygon":
        points = [to_px(x, y) for x, y in zip(c[0::2], c[1::2], strict=True)]
        draw.polygon(points, fill=fill, outline=edge, width=edge_width)
    elif shape.kind == "line":
        points = [to_px(x, y) for x, y in zip(c[0::2], c[1::2], strict=True)]
        draw.line(points, fill=fill, width=max(1, round(shape.width * to_px.scale)), joint="curve")
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")


def _paste_band(canvas: Image.Image, alpha: Image.Image, shape: Shape, fill: RGB, to_px) -> None:
    """A scarf: a horizontal band with dark edges, clipped to everything drawn so far."""
    top, bottom = to_px(0, shape.coords[0])[1], to_px(0, shape.coords[1])[1]
    for color, grow in ((INK, SUPERSAMPLE - 1), (fill, 0)):
        band = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(band).rectangle([0, top - grow, canvas.width, bottom + grow], fill=255)
        canvas.paste(color, mask=Image.fromarray(np.minimum(np.asarray(band), np.asarray(alpha))))


class _ToPixels:
    """Unit coordinates -> supersampled canvas pixels."""

    def __init__(self, scale: float, x0: float, y0: float):
        self.scale, self.x0, self.y0 = scale, x0, y0

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) * self.scale, (y - self.y0) * self.scale


def _paint(placement: Placement) -> tuple[Image.Image, Image.Image]:
    """The unrotated object at ``SUPERSAMPLE`` times its size: colours (outline colour around it) and alpha."""
    attrs = placement.attributes
    sketch = sketch_object(placement.category, attrs)
    body, accent = COLORS[attrs["color"]], COLORS[attrs.get("accent", attrs["color"])]
    x0, y0, x1, y1 = sketch.bounds()
    scale = placement.size * SUPERSAMPLE / max(x1 - x0, y1 - y0)
    pad = 2 * SUPERSAMPLE
    to_px = _ToPixels(scale, x0 - pad / scale, y0 - pad / scale)
    width, height = (int(np.ceil((x1 - x0) * scale)) + 2 * pad, int(np.ceil((y1 - y0) * scale)) + 2 * pad)

    body_mask = Image.new("L", (width, height), 0)
    body_draw = ImageDraw.Draw(body_mask)
    for shape in sketch.shapes:
        if shape.color is None:
            _draw_shape(body_draw, shape, 255, to_px)
    # Body colour with the pattern in the accent colour, on the body shapes only.
    u = np.arange(width, dtype=np.float32)[None, :] / scale + to_px.x0
    v = np.arange(height, dtype=np.float32)[:, None] / scale + to_px.y0
    pattern = np.broadcast_to(_pattern_mask(attrs.get("pattern", "plain"), u, v), (height, width))
    colors = np.where(pattern[..., None], np.array(accent, np.uint8), np.array(body, np.uint8))
    canvas = Image.new("RGB", (width, height), OUTLINE)
    canvas.paste(Image.fromarray(colors.astype(np.uint8), "RGB"), mask=body_mask)
    alpha = body_mask
    draw, alpha_draw = ImageDraw.Draw(canvas), ImageDraw.Draw(alpha)
    for shape in sketch.shapes:
        if shape.color is None:
            continue
        fill = _resolve(shape.color, body)
        if shape.kind == "band":
            _paste_band(canvas, alpha, shape, fill, to_px)
            continue
        edge = INK if shape.outlined else None
        _draw_shape(draw, shape, fill, to_px, edge)
        _draw_shape(alpha_draw, shape, 255, to_px, 255 if edge else None)
    return canvas, alpha


def draw_object(placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """One object at its final size and angle: premultiplied colour ``[h, w, 3]`` and alpha ``[h, w]`` (0..1).

    The arrays are centred on the object's centre, outline included.
    """
    canvas, alpha = _paint(placement)
    # The outline: the silhouette grown by one final pixel (SUPERSAMPLE canvas pixels), showing the
    # outline colour the canvas was filled with. Grown here, before averaging, so its edge is anti-aliased
    # like every other edge.
    for _ in range(SUPERSAMPLE):
        alpha = alpha.filter(ImageFilter.MaxFilter(3))
    canvas.putalpha(alpha)
    # Premultiplied alpha ("RGBa") from here on: rotating and averaging then blend edges with the object's
    # own colour, never with the colour of the transparent surroundings.
    sprite = canvas.convert("RGBa")
    if placement.flip:
        sprite = sprite.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if placement.angle:
        sprite = sprite.rotate(placement.angle, Image.Resampling.BILINEAR, expand=True)
    pixels = np.asarray(sprite.reduce(SUPERSAMPLE), np.float32)
    return pixels[..., :3], pixels[..., 3] / 255.0


# ---------------------------------------------------------------------------------------------- backdrops
def draw_backdrop(backdrop: Backdrop, width: int, height: int) -> np.ndarray:
    """The background as a float ``[H, W, 3]`` array in 0..255."""
    first = np.array(BACKDROP_COLORS[backdrop.color], np.float32)
    second = np.array(BACKDROP_COLORS[backdrop.second], np.float32)
    rng = np.random.default_rng(backdrop.seed)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    if backdrop.kind == "plain":
        mix = np.zeros((height, width), np.float32)
    elif backdrop.kind == "gradient":
        along = x / width * np.cos(backdrop.angle) + y / height * np.sin(backdrop.angle)
        mix = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    elif backdrop.kind == "mottled":
        blobs = Image.fromarray(rng.random((6, 6)).astype(np.float32))
        mix = 0.45 * np.asarray(blobs.resize((width, height), Image.Resampling.BICUBIC), np.float32).clip(
            0, 1
        )
    elif backdrop.kind == "planks":
        plank = rng.integers(8, 17) * height / 112
        row = np.floor(y / plank)
        mix = 0.25 * (row % 2) + 0.5 * ((y % plank) < max(1.0, plank / 10))
    elif backdrop.kind == "tiles":
        tile = rng.integers(14, 29) * width / 112
        mix = 0.3 * ((np.floor(x / tile) + np.floor(y / tile)) % 2)
    else:
        raise ValueError(f"unknown backdrop kind {backdrop.kind!r}; known: {', '.join(BACKDROP_KINDS)}")
    mix = np.broadcast_to(mix, (height, width))[..., None]  # planks vary along y only
    return (first * (1 - mix) + second * mix).astype(np.float32)


# ------------------------------------------------------------------------------------------------ pictures
def render(picture: Picture) -> Rendered:
    """Draw ``picture``: backdrop, objects in order, then lighting and noise."""
    w, h = picture.width, picture.height
    image = draw_backdrop(picture.backdrop, w, h)
    labels = np.full((h, w), -1, np.int16)
    full_area: list[int] = []
    for index, placement in enumerate(picture.placements):
        premult, alpha = draw_object(placement)
        sh, sw = alpha.shape
        left = int(round(placement.center[0] - sw / 2))
        top = int(round(placement.center[1] - sh / 2))
        # The part of the object inside the image (objects may hang over the edge).
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + sw, w), min(top + sh, h)
        full_area.append(int((alpha >= 0.5).sum()))
        if x0 >= x1 or y0 >= y1:
            continue
        a = alpha[y0 - top : y1 - top, x0 - left : x1 - left]
        p = premult[y0 - top : y1 - top, x0 - left : x1 - left]
        image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - a[..., None]) + p
        labels[y0:y1, x0:x1][a >= 0.5] = index
    image = _light(image, picture.lighting)
    visible = [float((labels == i).sum()) / max(area, 1) for i, area in enumerate(full_area)]
    return Rendered(image=image, labels=labels, visible=visible)


def _light(image: np.ndarray, lighting: Lighting) -> np.ndarray:
    h, w = image.shape[:2]
    y = np.arange(h, dtype=np.float32)[:, None] / h - 0.5
    x = np.arange(w, dtype=np.float32)[None, :] / w - 0.5
    along = x * np.cos(lighting.ramp_angle) + y * np.sin(lighting.ramp_angle)
    image = image * (lighting.brightness + lighting.ramp * along)[..., None]
    if lighting.noise > 0:
        noise = np.random.default_rng(lighting.noise_seed).normal(0.0, lighting.noise, image.shape)
        image = image + noise.astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """PNG bytes with fixed options and no metadata: the same pixels always give the same bytes."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image, "RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- contact sheet
_ZOOM = 2  # contact sheet magnification, nearest-neighbour so single pixels stay visible
_ROLE_COLORS: dict[str, RGB] = {
    "concept": (0, 170, 60),
    "lookalike": (235, 110, 0),
    "other": (90, 90, 200),
    "prop": (120, 120, 120),
}


def _sheet_scenes(collection: Collection, count: int) -> list[Scene]:
    """A varied pick: a lookalike, an occlusion, two- and four-concept scenes of both splits, a negative."""
    wanted = [
        ("train", "single", lambda d: any(x["role"] == "lookalike" for x in d)),
        ("train", "single", lambda d: any(x["role"] == "concept" and x["visible"] < 0.9 for x in d)),
        ("train", "two", lambda d: True),
        ("train", "four", lambda d: True),
        ("heldout", "four", lambda d: True),
        ("train", "negative", lambda d: len(d) > 1),
    ]
    picked: list[Scene] = []
    for split, kind, test in wanted:
        for scene in collection.scenes:
            if (
                scene.split == split
                and scene.extra.get("kind") == kind
                and scene not in picked
                and test(scene.extra.get("object_details", []))
            ):
                picked.append(scene)
                break
    return picked[:count]


def contact_sheet(
    collection: Collection, out_png: str | os.PathLike, *, per_category: int = 3, scenes: int = 6
) -> Path:
    """Write a PNG overview of a collection and return its path.

    One row per category with the reference images of up to ``per_category`` of its concepts side by side
    (so same-category concepts can be compared), then ``scenes`` scenes with every box drawn: green for
    concepts (labelled with their name), orange for lookalikes, blue for other objects, gray for props.
    The project's ``docs/images/contact_sheet.png`` is
    ``contact_sheet(generate_world("world"), "docs/images/contact_sheet.png")`` (seed 0, the defaults).
    """
    font = ImageFont.load_default(size=11)
    split_of = {tag: split for split, tags in collection.splits.items() for tag in tags}
    by_category: dict[str, list[Concept]] = {}
    for split in collection.splits:  # training concepts first, then held-out ones
        for concept in collection.concepts_in(split):
            by_category.setdefault(concept.category, []).append(concept)
    refs = max((len(c.images) for c in collection.concepts.values()), default=1)
    with Image.open(next(iter(collection.concepts.values())).images[0]) as first:
        ref_side = first.width * _ZOOM
    label_w, gap = 56, 10
    cell_w = refs * ref_side + gap
    width = label_w + per_category * cell_w
    rows = []
    for category, concepts in by_category.items():
        row = Image.new("RGB", (width, ref_side + 16), (255, 255, 255))
        draw = ImageDraw.Draw(row)
        draw.text((4, ref_side // 2 - 6), category, fill=INK, font=font)
        for slot, concept in enumerate(_sheet_concepts(concepts, split_of, per_category)):
            x = label_w + slot * cell_w
            for k, path in enumerate(concept.images[:refs]):
                with Image.open(path) as ref:
                    row.paste(
                        ref.convert("RGB").resize((ref_side, ref_side), Image.Resampling.NEAREST),
                        (x + k * ref_side, 0),
                    )
            draw.text((x, ref_side + 2), f"{concept.tag}  ({split_of[concept.tag]})", fill=INK, font=font)
        rows.append(row)
    shown = _sheet_scenes(collection, scenes)
    if shown:
        side = shown[0].width * _ZOOM
        per_row = max(1, width // (side + gap))
        for start in range(0, len(shown), per_row):
            row = Image.new("RGB", (width, side + 16), (255, 255, 255))
            for slot, scene in enumerate(shown[start : start + per_row]):
                row.paste(_boxed_scene(collection, scene, font), (slot * (side + gap), 0))
                caption = f"{scene.split} / {scene.extra.get('kind', '?')}"
                ImageDraw.Draw(row).text((slot * (side + gap), side + 2), caption, fill=INK, font=font)
            rows.append(row)
    sheet = Image.new("RGB", (width, sum(r.height + 4 for r in rows)), (255, 255, 255))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 4
    # 256 colours keep the sheet small enough to live in the repository.
    out = Path(out_png)
    atomic_write_bytes(out, png_bytes(sheet.quantize(256, dither=Image.Dither.NONE)))
    return out


def _sheet_concepts(concepts: list[Concept], split_of: dict[str, str], count: int) -> list[Concept]:
    """Up to ``count`` concepts of one category, the last one from another split when there is one."""
    first_split = split_of[concepts[0].tag]
    others = [c for c in concepts if split_of[c.tag] != first_split]
    same = [c for c in concepts if split_of[c.tag] == first_split]
    return (same[: count - 1] + others[:1]) if others and count > 1 else same[:count]


def _boxed_scene(collection: Collection, scene: Scene, font) -> Image.Image:
    with Image.open(collection.image_path(scene.image)) as image:
        big = image.convert("RGB").resize(
            (scene.width * _ZOOM, scene.height * _ZOOM), Image.Resampling.NEAREST
        )
    draw = ImageDraw.Draw(big)
    details = scene.extra.get("object_details") or [{} for _ in scene.objects]
    for obj, detail in zip(scene.objects, details, strict=False):  # details may be absent
        role = detail.get("role", "concept" if obj.concept else "prop")
        color = _ROLE_COLORS.get(role, _ROLE_COLORS["prop"])
        x1, y1, x2, y2 = (v * _ZOOM for v in obj.box)
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=1)
        label = obj.concept or (f"~{detail['like']}" if role == "lookalike" else obj.category)
        draw.text((x1 + 2, y1 + 1), label, fill=color, font=font, stroke_width=2, stroke_fill=(255, 255, 255))
    return big
