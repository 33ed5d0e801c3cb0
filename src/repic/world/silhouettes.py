"""What the objects of the synthetic world look like: vector sketches of categories, props and accessories.

Each category is a small function that returns a ``Sketch``: a list of ``Shape`` s in unit coordinates
(x to the right, y down, the object roughly filling ``[0, 1]``) plus three anchors where accessories go
(``top`` for a hat, ``neck`` for a scarf or bow, ``badge`` for a star). ``repic.world.render`` turns a
sketch into pixels; nothing here touches pixels, so the look of the world can be read and changed in one
place.

Choices, and why:

- Silhouettes differ at a glance between categories (ears, tails, wheels, roofs, petals, handles), because
  the category is the coarse cue a captioner must get right before the fine ones.
- Inside a category, identities differ by fine detail: a shape variant that changes the body's
  proportions (``round`` / ``tall`` / ``wide``), the body colour, a pattern in an accent colour and an
  accessory in that same accent colour. One accent colour (not two) keeps every attribute visible: a
  plain body still shows its accent on the accessory.
- Shapes whose ``color`` is ``None`` are the *body*: they take the body colour and the pattern. Details
  have fixed colours (eyes, wheels, stems), ``SHADE`` / ``TINT``, a darker or lighter body colour (a
  roof, a cube's sides), or ``CONTRAST`` (whichever of dark and light stands out from the body), so the
  body colour is what varies and everything else stays recognisable.
- Props (ball, block, cone) are never personal concepts: they are the generic clutter of a scene.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

RGB = tuple[int, int, int]
SHADE = "shade"  # the body colour, darker
TINT = "tint"  # the body colour, lighter
CONTRAST = "contrast"  # dark on a light body, light on a dark one (a flower's centre)

# Body and accent colours. Names are the words the captions use; values are saturated enough to stay
# apart under the scenes' brightness changes and noise.
COLORS: dict[str, RGB] = {
    "red": (214, 48, 49),
    "orange": (240, 140, 30),
    "yellow": (247, 212, 52),
    "green": (56, 166, 72),
    "blue": (48, 98, 214),
    "purple": (136, 74, 188),
    "pink": (242, 140, 186),
    "brown": (128, 82, 44),
    "white": (246, 246, 240),
    "gray": (140, 142, 146),
}

# Shape variants: horizontal and vertical stretch of the main body parts.
SHAPES: dict[str, tuple[float, float]] = {"round": (1.0, 1.0), "tall": (0.78, 1.22), "wide": (1.25, 0.8)}
ACCESSORIES: tuple[str, ...] = ("hat", "scarf", "bow", "star")

INK: RGB = (30, 30, 34)
_CREAM: RGB = (236, 222, 196)
_METAL: RGB = (112, 114, 124)
_GLASS: RGB = (184, 216, 240)
_TIRE: RGB = (42, 42, 46)
_HUB: RGB = (200, 200, 206)
_BEAK: RGB = (245, 165, 40)
_STEM: RGB = (62, 140, 62)
_POT: RGB = (186, 98, 60)
_WHITE: RGB = (250, 250, 250)


@dataclass(frozen=True)
class Shape:
    """One filled shape. ``coords`` are flat unit coordinates whose meaning depends on ``kind``.

    - ``ellipse``: cx, cy, rx, ry;  ``rect`` / ``rounded``: x0, y0, x1, y1 (``width`` = corner radius)
    - ``polygon``: x0, y0, x1, y1, ...;  ``line``: a polyline, ``width`` thick;
    - ``ring``: an ellipse outline ``width`` thick (cx, cy, rx, ry);
    - ``band``: y0, y1, a horizontal band clipped to what is drawn so far (a scarf wraps the body).
    """

    kind: str
    coords: tuple[float, ...]
    color: RGB | str | None = None  # None: body colour and pattern; SHADE / TINT: derived from the body
    width: float = 0.0
    outlined: bool = False  # a thin dark edge, so an accessory stands out from a pattern of its own colour

    def bounds(self) -> tuple[float, float, float, float]:
        """The unit-coordinate box this shape can paint into (bands paint inside others, so they add none)."""
        c = self.coords
        if self.kind in ("ellipse", "ring"):
            pad = self.width / 2
            return c[0] - c[2] - pad, c[1] - c[3] - pad, c[0] + c[2] + pad, c[1] + c[3] + pad
        if self.kind == "band":
            return math.inf, math.inf, -math.inf, -math.inf
        xs, ys = c[0::2], c[1::2]
        pad = self.width / 2 if self.kind == "line" else 0.0
        return min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad


def ellipse(
    cx: float, cy: float, rx: float, ry: float | None = None, color: RGB | str | None = None
) -> Shape:
    return Shape("ellipse", (cx, cy, rx, rx if ry is None else ry), color)


def polygon(*points: tuple[float, float], color: RGB | str | None = None) -> Shape:
    return Shape("polygon", tuple(v for p in points for v in p), color)


def rect(x0: float, y0: float, x1: float, y1: float, color: RGB | str | None = None) -> Shape:
    return Shape("rect", (x0, y0, x1, y1), color)


def line(*points: tuple[float, float], width: float, color: RGB | str | None = None) -> Shape:
    return Shape("line", tuple(v for p in points for v in p), color, width)


@dataclass
class Sketch:
    """An object as shapes in drawing order, plus where its accessory goes (``None``: takes none)."""

    shapes: list[Shape] = field(default_factory=list)
    top: tuple[float, float] | None = None
    neck: tuple[float, float] | None = None
    badge: tuple[float, float] | None = None

    def bounds(self) -> tuple[float, float, float, float]:
        boxes = [s.bounds() for s in self.shapes]
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )


def _mirror_x(points: list[tuple[float, float]], axis: float) -> list[tuple[float, float]]:
    return [(2 * axis - x, y) for x, y in points]


def _bear(sx: float, sy: float) -> Sketch:
    brx, bry = 0.24 * sx, 0.22 * sy
    bx, by = 0.5, 0.95 - bry
    hr = 0.17
    hy = by - bry - hr * 0.45
    body = [ellipse(bx - 0.13, hy - 0.13, 0.065), ellipse(bx + 0.13, hy - 0.13, 0.065)]  # ears
    body += [
        ellipse(bx - brx * 0.95, by - bry * 0.3, 0.06, 0.09),
        ellipse(bx + brx * 0.95, by - bry * 0.3, 0.06, 0.09),
    ]
    body += [ellipse(bx, by, brx, bry), ellipse(bx, hy, hr)]
    body += [ellipse(bx - 0.12, by + bry * 0.85, 0.08, 0.05), ellipse(bx + 0.12, by + bry * 0.85, 0.08, 0.05)]
    face = [ellipse(bx, hy + 0.06, 0.075, 0.055, _CREAM), ellipse(bx, hy + 0.035, 0.03, 0.022, INK)]
    face += [
        ellipse(bx - 0.065, hy - 0.03, 0.022, color=INK),
        ellipse(bx + 0.065, hy - 0.03, 0.022, color=INK),
    ]
    return Sketch(
        body + face, top=(bx, hy - hr + 0.01), neck=(bx, by - bry + 0.02), badge=(bx, by + bry * 0.15)
    )


def _cat(sx: float, sy: float) -> Sketch:
    brx, bry = 0.2 * sx, 0.22 * sy
    bx, by = 0.44, 0.95 - bry
    hr = 0.15
    hy = by - bry - hr * 0.35
    ear = [(bx - 0.14, hy - 0.04), (bx - 0.11, hy - 0.23), (bx - 0.02, hy - 0.12)]
    tail = line(
        (bx + brx * 0.7, by + bry * 0.5), (bx + brx + 0.12, by), (bx + brx + 0.1, by - bry - 0.02), width=0.06
    )
    body = [tail, ellipse(bx, by, brx, bry), polygon(*ear), polygon(*_mirror_x(ear, bx)), ellipse(bx, hy, hr)]
    face = [
        ellipse(bx - 0.06, hy - 0.01, 0.025, 0.035, INK),
        ellipse(bx + 0.06, hy - 0.01, 0.025, 0.035, INK),
    ]
    face.append(
        polygon((bx - 0.025, hy + 0.04), (bx + 0.025, hy + 0.04), (bx, hy + 0.07), color=(236, 120, 150))
    )
    for side in (-1, 1):
        for dy in (0.03, 0.08):
            face.append(
                line((bx + side * 0.04, hy + 0.06), (bx + side * 0.19, hy + dy), width=0.012, color=INK)
            )
    return Sketch(
        body + face, top=(bx, hy - hr + 0.01), neck=(bx, by - bry + 0.03), badge=(bx, by + bry * 0.2)
    )


def _cup(sx: float, sy: float) -> Sketch:
    tw, bw, h = 0.27 * sx, 0.2 * sx, 0.5 * sy
    cx, y1 = 0.45, 0.88
    y0 = y1 - h
    handle = Shape("ring", (cx + tw * 0.95, y0 + h * 0.4, 0.11, h * 0.25), None, 0.05)
    shapes = [handle, polygon((cx - tw, y0), (cx + tw, y0), (cx + bw, y1), (cx - bw, y1))]
    shapes += [
        ellipse(cx, y0, tw * 0.92, 0.035, (92, 58, 36)),
        ellipse(cx, y1 + 0.02, bw + 0.14, 0.035, _WHITE),
    ]
    return Sketch(shapes, top=(cx, y0 - 0.02), neck=(cx, y0 + h * 0.25), badge=(cx, y0 + h * 0.6))


def _robot(sx: float, sy: float) -> Sketch:
    bw, bh = 0.22 * sx, 0.2 * sy
    bx, by = 0.5, 0.84 - bh
    hw, hh = 0.15, 0.11
    hy = by - bh - 0.03 - hh
    shapes = [
        line((bx, hy - hh), (bx, hy - hh - 0.09), width=0.02, color=_METAL),
        ellipse(bx, hy - hh - 0.1, 0.03, color=INK),
    ]
    shapes += [rect(bx - 0.04, hy + hh - 0.01, bx + 0.04, by - bh + 0.01, _METAL)]
    for side in (-1, 1):
        leg_x = bx + side * bw * 0.6
        shapes.append(rect(leg_x - 0.04, by + bh - 0.01, leg_x + 0.04, 0.96, _METAL))
    shapes += [rect(bx - bw, by - bh, bx + bw, by + bh), rect(bx - hw, hy - hh, bx + hw, hy + hh)]
    shapes += [rect(bx - bw - 0.07, by - bh + 0.02, bx - bw + 0.005, by + bh * 0.5)]
    shapes += [rect(bx + bw - 0.005, by - bh + 0.02, bx + bw + 0.07, by + bh * 0.5)]
    for side in (-1, 1):
        shapes += [
            ellipse(bx + side * 0.06, hy - 0.01, 0.035, color=_WHITE),
            ellipse(bx + side * 0.06, hy - 0.01, 0.016, color=INK),
        ]
    shapes.append(rect(bx - 0.07, hy + 0.05, bx + 0.07, hy + 0.075, INK))
    return Sketch(shapes, top=(bx, hy - hh), neck=(bx, by - bh + 0.03), badge=(bx, by + 0.02))


def _bird(sx: float, sy: float) -> Sketch:
    brx, bry = 0.27 * sx, 0.19 * sy
    bx, by = 0.45, 0.8 - bry
    hr = 0.13
    hx, hy = bx + brx * 0.6, by - bry - hr * 0.35
    shapes = [
        line((bx - 0.05, by + bry - 0.01), (bx - 0.07, 0.95), width=0.02, color=_BEAK),
        line((bx + 0.05, by + bry - 0.01), (bx + 0.07, 0.95), width=0.02, color=_BEAK),
    ]
    shapes.append(
        polygon((bx - brx * 0.8, by - 0.03), (bx - brx - 0.16, by - 0.12), (bx - brx - 0.12, by + 0.07))
    )
    shapes += [ellipse(bx, by, brx, bry), ellipse(hx, hy, hr)]
    shapes.append(ellipse(bx - 0.03, by + 0.01, brx * 0.55, bry * 0.5, SHADE))  # the wing
    shapes.append(
        polygon(
            (hx + hr * 0.8, hy - 0.03), (hx + hr + 0.1, hy + 0.01), (hx + hr * 0.8, hy + 0.05), color=_BEAK
        )
    )
    shapes.append(ellipse(hx + 0.04, hy - 0.03, 0.022, color=INK))
    return Sketch(
        shapes, top=(hx, hy - hr + 0.01), neck=(hx - 0.02, hy + hr * 0.8), badge=(bx - 0.02, by + 0.02)
    )


def _car(sx: float, sy: float) -> Sketch:
    w, h = 0.43 * sx, 0.13 * sy
    cx, cy = 0.5, 0.72 - h
    roof = cy - h - 0.17 * sy
    cabin = polygon(
        (cx - w * 0.6, cy - h + 0.01),
        (cx - w * 0.35, roof),
        (cx + w * 0.35, roof),
        (cx + w * 0.65, cy - h + 0.01),
    )
    shapes = [cabin, Shape("rounded", (cx - w, cy - h, cx + w, cy + h), None, 0.06)]
    for side in (-1, 1):
        window = [
            (cx + side * w * 0.5, cy - h),
            (cx + side * w * 0.3, roof + 0.035),
            (cx + side * 0.015, roof + 0.035),
            (cx + side * 0.015, cy - h),
        ]
        shapes.append(polygon(*window, color=_GLASS))
    for side in (-1, 1):
        shapes += [
            ellipse(cx + side * w * 0.58, cy + h, 0.095, color=_TIRE),
            ellipse(cx + side * w * 0.58, cy + h, 0.04, color=_HUB),
        ]
    shapes.append(ellipse(cx + w - 0.03, cy - h * 0.3, 0.025, 0.02, (255, 235, 140)))
    return Sketch(shapes, top=(cx, roof), neck=(cx, cy), badge=(cx + w * 0.05, cy + 0.005))


def _house(sx: float, sy: float) -> Sketch:
    w, h = 0.3 * sx, 0.22 * sy
    cx, y1 = 0.5, 0.94
    y0 = y1 - 2 * h
    shapes = [rect(cx - w, y0, cx + w, y1)]
    shapes.append(rect(cx + w * 0.45, y0 - 0.2, cx + w * 0.45 + 0.07, y0 - 0.06, (150, 70, 50)))  # chimney
    shapes.append(
        polygon((cx - w - 0.07, y0 + 0.01), (cx, y0 - 0.24), (cx + w + 0.07, y0 + 0.01), color=SHADE)
    )
    shapes.append(rect(cx - 0.055, y1 - 0.19, cx + 0.055, y1, (100, 62, 36)))
    wx, wy = cx + w * 0.5, y0 + h * 0.55
    shapes.append(rect(wx - 0.065, wy - 0.065, wx + 0.065, wy + 0.065, _GLASS))
    shapes += [
        line((wx, wy - 0.065), (wx, wy + 0.065), width=0.012, color=INK),
        line((wx - 0.065, wy), (wx + 0.065, wy), width=0.012, color=INK),
    ]
    return Sketch(shapes, top=(cx, y0 - 0.22), neck=(cx, y0 + 0.05), badge=(cx - w * 0.5, y0 + h * 0.9))


def _flower(sx: float, sy: float) -> Sketch:
    ring_x, ring_y, petal = 0.14 * sx, 0.14 * sy, 0.12
    cx, cy = 0.5, 0.3
    shapes = [line((cx, cy + ring_y + petal * 0.5), (cx, 0.78), width=0.035, color=_STEM)]
    shapes.append(polygon((cx, 0.64), (cx + 0.14, 0.53), (cx + 0.21, 0.56), (cx + 0.05, 0.67), color=_STEM))
    shapes.append(polygon((cx, 0.7), (cx - 0.14, 0.59), (cx - 0.21, 0.62), (cx - 0.05, 0.73), color=_STEM))
    for k in range(6):
        angle = math.pi / 2 + k * math.pi / 3
        shapes.append(ellipse(cx + ring_x * math.cos(angle), cy + ring_y * math.sin(angle), petal))
    shapes.append(ellipse(cx, cy, 0.075, color=CONTRAST))
    shapes.append(
        polygon((cx - 0.15, 0.77), (cx + 0.15, 0.77), (cx + 0.11, 0.96), (cx - 0.11, 0.96), color=_POT)
    )
    shapes.append(rect(cx - 0.17, 0.74, cx + 0.17, 0.8, (160, 82, 50)))
    return Sketch(shapes, top=(cx, cy - ring_y - petal + 0.03), neck=(cx, 0.8), badge=(cx, 0.88))


def _ball(sx: float, sy: float) -> Sketch:
    return Sketch([ellipse(0.5, 0.5, 0.4), ellipse(0.36, 0.36, 0.08, 0.06, _WHITE)])


def _block(sx: float, sy: float) -> Sketch:
    front = rect(0.1, 0.3, 0.7, 0.9)
    top = polygon((0.1, 0.3), (0.3, 0.1), (0.9, 0.1), (0.7, 0.3), color=TINT)
    side = polygon((0.7, 0.3), (0.9, 0.1), (0.9, 0.7), (0.7, 0.9), color=SHADE)
    return Sketch([front, top, side])


def _cone(sx: float, sy: float) -> Sketch:
    return Sketch([polygon((0.5, 0.08), (0.78, 0.86), (0.22, 0.86)), rect(0.12, 0.84, 0.88, 0.94, SHADE)])


Drawer = Callable[[float, float], Sketch]

# Personal concepts come from these categories; the keys are the nouns captions use.
CATEGORY_SKETCHES: dict[str, Drawer] = {
    "bear": _bear,
    "cat": _cat,
    "cup": _cup,
    "robot": _robot,
    "bird": _bird,
    "car": _car,
    "house": _house,
    "flower": _flower,
}
# Generic clutter, never a concept.
PROP_SKETCHES: dict[str, Drawer] = {"ball": _ball, "block": _block, "cone": _cone}


def _star(x: float, y: float, outer: float, inner: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
    return points


def accessory_shapes(sketch: Sketch, accessory: str, color: RGB) -> list[Shape]:
    """The shapes of ``accessory`` placed on ``sketch``'s anchor, in ``color``, outlined; drawn last."""
    return [replace(shape, outlined=True) for shape in _accessory(sketch, accessory, color)]


def _accessory(sketch: Sketch, accessory: str, color: RGB) -> list[Shape]:
    if accessory == "hat" and sketch.top is not None:
        x, y = sketch.top
        return [
            rect(x - 0.14, y - 0.025, x + 0.14, y + 0.015, color),
            rect(x - 0.085, y - 0.15, x + 0.085, y - 0.02, color),
            rect(x - 0.085, y - 0.05, x + 0.085, y - 0.025, INK),
        ]
    if accessory == "scarf" and sketch.neck is not None:
        x, y = sketch.neck
        tail = polygon((x + 0.03, y), (x + 0.1, y), (x + 0.12, y + 0.14), (x + 0.05, y + 0.14), color=color)
        return [Shape("band", (y - 0.05, y + 0.05), color), tail]
    if accessory == "bow" and sketch.neck is not None:
        x, y = sketch.neck
        left = polygon((x, y), (x - 0.12, y - 0.07), (x - 0.12, y + 0.07), color=color)
        right = polygon((x, y), (x + 0.12, y - 0.07), (x + 0.12, y + 0.07), color=color)
        return [left, right, ellipse(x, y, 0.035, color=color)]
    if accessory == "star" and sketch.badge is not None:
        return [polygon(*_star(*sketch.badge, 0.1, 0.045), color=color)]
    raise ValueError(f"accessory {accessory!r} does not fit this sketch")


def sketch_object(category: str, attributes: dict[str, str]) -> Sketch:
    """The full sketch of an object: its category's silhouette in its shape variant, plus its accessory."""
    drawer = CATEGORY_SKETCHES.get(category) or PROP_SKETCHES.get(category)
    if drawer is None:
        known = ", ".join([*CATEGORY_SKETCHES, *PROP_SKETCHES])
        raise ValueError(f"no drawing for category {category!r}; known: {known}")
    sketch = drawer(*SHAPES[attributes.get("shape", "round")])
    accessory = attributes.get("accessory")
    if accessory:
        sketch.shapes += accessory_shapes(sketch, accessory, COLORS[attributes["accent"]])
    return sketch
