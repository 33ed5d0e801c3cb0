"""Concept retrieval: the built-in embedder, the FAISS index on disk and its rebuilds, top-K ranking."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repic.concepts import ConceptDatabase, load_database
from repic.concepts.embed import ColourEmbedder, l2_normalise
from repic.concepts.index import index_paths, open_index, read_index
from repic.concepts.retrieve import NAMED_VIEW, Retriever, grid_crops, open_retriever
from repic.errors import RepicError
from repic.records import Concept

RED, ORANGE, BLUE = (255, 0, 0), (255, 255, 0), (0, 0, 255)
ROOT_HALF = 1 / math.sqrt(2)


class MeanColourEmbedder:
    """A fake embedder whose vector is the image's mean RGB, normalised: similarities are easy to hand-check."""

    def __init__(self, id: str = "fake:mean-rgb") -> None:
        self._id = id
        self.calls = 0

    @property
    def id(self) -> str:
        return self._id

    def embed(self, images):
        self.calls += 1
        return l2_normalise(np.stack([np.asarray(image.convert("RGB"), np.float32).mean((0, 1)) for image in images]))


def solid(path: Path, colour, size=(16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def halves(left, right, size=(16, 16)) -> Image.Image:
    """An image whose left half is one colour and right half another."""
    image = Image.new("RGB", size, left)
    image.paste(Image.new("RGB", (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


@pytest.fixture
def database(tmp_path) -> ConceptDatabase:
    """Three concepts: <red> (a red and a blue view), <orange> (yellow-ish, RGB 255,255,0) and <blue>."""
    db = ConceptDatabase(tmp_path / "db" / "database.json")
    sources = tmp_path / "sources"
    db.add(Concept("red", "red", "toy", "a red toy", [solid(sources / "r1.png", RED), solid(sources / "r2.png", (0, 255, 0))]))
    db.add(Concept("orange", "Orange Cat", "cat", "an orange cat", [solid(sources / "o.png", ORANGE)]))
    db.add(Concept("blue", "blue", "toy", "a blue toy", [solid(sources / "b.png", BLUE)]))
    db.save()
    return load_database(db.path)


# ------------------------------------------------------------------------------------------ embedders
@pytest.mark.parametrize(
    "colour, expected_class, why",
    [
        ((255, 0, 0), 0, "red: PIL hue 0 -> sector 0 * 12 // 256 = 0"),
        ((255, 255, 0), 1, "yellow: PIL hue 42 -> 42 * 12 // 256 = 1"),
        ((0, 255, 0), 3, "green: PIL hue 85 -> 1020 // 256 = 3"),
        ((0, 0, 255), 7, "blue: PIL hue 170 -> 2040 // 256 = 7"),
        ((200, 120, 120), 0, "pink: saturation 102 >= 64 counts as red"),
        ((0, 0, 0), 12, "black: unsaturated, brightness 0 < 64 -> grey level 0 -> class 12 + 0"),
        ((150, 150, 150), 14, "mid grey: brightness 150 in [128, 200) -> grey level 2 -> class 14"),
        ((255, 255, 255), 15, "white: brightness 255 >= 200 -> grey level 3 -> class 15"),
    ],
)
def test_colour_classes_by_hand(colour, expected_class, why):
    classes = ColourEmbedder().colour_classes(Image.new("RGB", (8, 8), colour))
    assert set(classes.ravel().tolist()) == {expected_class}, why


def test_colour_embedder_rows_are_unit_length_and_deterministic():
    embedder = ColourEmbedder()
    images = [halves(RED, BLUE), Image.new("RGB", (40, 30), ORANGE)]
    vectors = embedder.embed(images)
    assert vectors.shape == (2, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(vectors, embedder.embed(images))  # no randomness
    assert embedder.embed([]).shape == (0, embedder.dim)


def bands(*colours, side=48) -> Image.Image:
    """Vertical bands of equal width, left to right."""
    image = Image.new("RGB", (side, side))
    width = side // len(colours)
    for number, colour in enumerate(colours):
        image.paste(Image.new("RGB", (width, side), colour), (number * width, 0))
    return image


def test_colour_embedder_tells_which_colours_touch():
    # Same colours in the same amounts (a third each), different neighbours: red|blue|green has the pairs
    # red-blue and blue-green, red|green|blue has red-green and green-blue. Colour halves agree (cosine 1),
    # pair halves share one of two equal pairs (cosine 1/2): similarity (1 + 1/2) / 2 = 0.75. The same
    # bands turned on their side keep every pair: similarity 1.
    embedder = ColourEmbedder()
    green = (0, 255, 0)
    query = bands(RED, BLUE, green).rotate(90)
    similarities = embedder.embed([query]) @ embedder.embed([bands(RED, BLUE, green), bands(RED, green, BLUE)]).T
    assert np.round(similarities, 4).tolist() == [[1.0, 0.75]]


# ------------------------------------------------------------------------------------------ the index
def test_index_is_saved_next_to_the_database_and_reused(database):
    embedder = MeanColourEmbedder()
    first = open_index(database, embedder)
    faiss_file, meta_file = index_paths(database.path)
    assert (first.rebuilt, first.reason) == (True, "no saved index")
    assert faiss_file.is_file() and meta_file.is_file() and faiss_file.parent == database.path.parent
    assert first.index.tags == ["<red>", "<red>", "<orange>", "<blue>"]  # one row per reference image
    calls = embedder.calls
    second = open_index(load_database(database.path), embedder)
    assert (second.rebuilt, second.reason) == (False, "up to date")
    assert embedder.calls == calls  # nothing embedded again
    assert np.array_equal(second.index.vectors, first.index.vectors)


def test_a_moved_database_reuses_its_index_and_retrieves_images_where_they_are_now(database, tmp_path):
    embedder = MeanColourEmbedder()
    open_index(database, embedder)
    moved = tmp_path / "moved"
    database.path.parent.rename(moved)
    # The database's images were copied into its folder on save, so they moved with it.
    reopened = load_database(moved / "database.json")
    calls = embedder.calls
    opened = open_index(reopened, embedder)
    assert (opened.rebuilt, opened.reason, embedder.calls) == (False, "up to date", calls)
    assert opened.index.images == [str(image) for concept in reopened for image in concept.images]
    found = Retriever(reopened, opened.index, embedder, k=1).retrieve(Image.new("RGB", (16, 16), BLUE))
    assert found[0].tag == "<blue>" and Path(found[0].image).is_file()
    assert Path(found[0].image).is_relative_to(moved)


@pytest.mark.parametrize(
    "change, reason",
    [
        ("info", "the database changed since the index was built"),
        ("image", "the database changed since the index was built"),
        ("embedder", "the saved index was built with fake:mean-rgb, not fake:other"),
        ("corrupt", "does not belong to"),
        ("rows", "rows do not match the database's reference images"),
    ],
)
def test_index_is_rebuilt_when_the_database_or_embedder_changes(database, change, reason):
    open_index(database, MeanColourEmbedder())
    embedder = MeanColourEmbedder()
    if change == "info":
        raw = json.loads(database.path.read_text())
        raw["concept_dict"]["<blue>"]["info"] = "a navy toy"
        database.path.write_text(json.dumps(raw))
    elif change == "image":
        solid(database.get("blue").images[0], (0, 0, 200))  # same path, new pixels
    elif change == "embedder":
        embedder = MeanColourEmbedder("fake:other")
    elif change == "rows":  # a description edited by hand: its rows no longer pair with the images
        meta_file = index_paths(database.path)[1]
        meta = json.loads(meta_file.read_text())
        meta["rows"][0][0] = "<blue>"
        meta_file.write_text(json.dumps(meta))
    else:
        index_paths(database.path)[0].write_bytes(b"not an index")
    reopened = open_index(load_database(database.path), embedder)
    assert reopened.rebuilt and reason in reopened.reason
    assert read_index(database.path)[0] is not None  # the rebuilt index was saved again


def test_index_elsewhere_and_unwritable_folders(database, tmp_path):
    elsewhere = tmp_path / "cache" / "my.index.json"
    opened = open_index(database, MeanColourEmbedder(), elsewhere)
    assert opened.path == elsewhere and (tmp_path / "cache" / "my.index.faiss").is_file()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(RepicError, match=r"cannot write the retrieval index .*\(--index PATH\)"):
        open_index(database, MeanColourEmbedder(), blocker / "db.json")  # its folder is a file


def test_empty_database_and_missing_images_are_explained(tmp_path, database):
    empty = ConceptDatabase(tmp_path / "empty.json")
    empty.save()
    with pytest.raises(RepicError, match="has no concepts to retrieve; add some with `repic db add"):
        open_index(load_database(empty.path), MeanColourEmbedder())
    database.get("orange").images[0].unlink()
    with pytest.raises(RepicError, match=r"1 reference image problem.*o\.png of <orange> does not exist"):
        open_index(load_database(database.path), MeanColourEmbedder())


# ------------------------------------------------------------------------------------------ retrieval
def retriever(database, k=2, grid=False) -> Retriever:
    embedder = MeanColourEmbedder()
    return Retriever(database, open_index(database, embedder).index, embedder, k=k, use_grid_crops=grid)


def test_retrieval_order_by_hand(database):
    # Query: pure red -> cosine with red 1, with orange (255,255,0)/|.| = 1/sqrt2, with blue 0.
    found = retriever(database, k=3).retrieve(Image.new("RGB", (16, 16), RED))
    assert [(f.tag, round(f.score, 4)) for f in found] == [("<red>", 1.0), ("<orange>", round(ROOT_HALF, 4)), ("<blue>", 0.0)]
    assert found[0].image.name == "r1.png" and found[0].view == "image"


def test_a_concept_is_as_close_as_its_closest_reference_image(database):
    # Query: pure green -> <red>'s second (green) image matches exactly; orange (1,1,0)/sqrt2 scores 1/sqrt2.
    found = retriever(database, k=2).retrieve(Image.new("RGB", (16, 16), (0, 255, 0)))
    assert [(f.tag, round(f.score, 4), f.image.name) for f in found] == [
        ("<red>", 1.0, "r2.png"),
        ("<orange>", round(ROOT_HALF, 4), "o.png"),
    ]


def test_grid_crops_find_an_object_that_fills_only_part_of_the_image(database):
    # Left half red, right half blue: the whole image is (1,0,1)/sqrt2, equally close to red and blue;
    # the top-left grid crop is pure red (score 1.0), the top-right pure blue.
    query = halves(RED, BLUE)
    whole = retriever(database, k=2).retrieve(query)
    assert [(f.tag, round(f.score, 4)) for f in whole] == [("<blue>", round(ROOT_HALF, 4)), ("<red>", round(ROOT_HALF, 4))]
    cropped = retriever(database, k=2, grid=True).retrieve(query)
    assert [(f.tag, round(f.score, 4), f.view) for f in cropped] == [("<blue>", 1.0, "grid 3"), ("<red>", 1.0, "grid 1")]


def test_grid_crops_are_nine_half_size_windows():
    crops = grid_crops(halves(RED, BLUE, (16, 8)))
    assert [crop.size for crop in crops] == [(8, 4)] * 9
    assert crops[0].getpixel((0, 0)) == RED and crops[2].getpixel((7, 0)) == BLUE  # top-left / top-right


@pytest.mark.parametrize(
    "question, expected, why",
    [
        ("Is <blue> here?", ["<blue>", "<red>"], "the tag is named: it comes first, retrieval fills one place"),
        ("What is orange cat doing?", ["<orange>", "<red>"], "the display name 'Orange Cat' as whole words"),
        ("<blue> and <orange>?", ["<blue>", "<orange>"], "two named: K places filled, nothing retrieved"),
        ("An orange catalogue", ["<red>", "<orange>"], "'orange cat' inside 'catalogue' is not the name"),
    ],
)
def test_concepts_named_in_the_question_are_always_included(database, question, expected, why):
    found = retriever(database, k=2).retrieve(Image.new("RGB", (16, 16), RED), question)
    assert [f.tag for f in found] == expected, why
    named = [f for f in found if f.view == NAMED_VIEW]
    assert all(f.score is None for f in named)


def test_more_named_concepts_than_k_are_all_kept(database):
    found = retriever(database, k=1).retrieve(Image.new("RGB", (16, 16), RED), "<blue>, <orange>")
    assert [f.tag for f in found] == ["<blue>", "<orange>"]


@pytest.mark.parametrize("k", [0, 4])
def test_k_outside_the_database_is_explained(database, k):
    with pytest.raises(RepicError, match=f"cannot retrieve the top {k} concepts: .* has 3 concept.*between 1 and 3"):
        open_retriever(database, embedder=MeanColourEmbedder(), k=k)


def test_index_of_another_embedder_is_refused(database):
    index = open_index(database, MeanColourEmbedder()).index
    with pytest.raises(RepicError, match="built with fake:mean-rgb but queries would be embedded with fake:x"):
        Retriever(database, index, MeanColourEmbedder("fake:x"))


def test_open_retriever_with_the_builtin_embedder(database):
    found_retriever, opened = open_retriever(database, k=1)
    assert opened.index.embedder_id == "builtin:colour-v1" and opened.rebuilt
    assert [f.tag for f in found_retriever.retrieve(Image.new("RGB", (32, 32), BLUE))] == ["<blue>"]
