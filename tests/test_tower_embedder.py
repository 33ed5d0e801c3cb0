"""Retrieval through a model's own vision tower (``tower:MODEL``): reference means, query tokens, ranking."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from repic.concepts import ConceptDatabase, load_database
from repic.concepts.embed import load_embedder
from repic.concepts.retrieve import grid_crops, open_retriever
from repic.concepts.tower import TowerEmbedder
from repic.errors import RepicError
from repic.records import Concept
from repic.shipped import shipped_base_path


@pytest.fixture(scope="module")
def tower():
    return load_embedder(f"tower:{shipped_base_path()}")


def _picture(colour, size=56):
    image = Image.new("RGB", (size, size), (230, 230, 230))
    image.paste(Image.new("RGB", (size // 2, size // 2), colour), (size // 4, size // 4))
    return image


def test_reference_means_and_query_tokens_are_unit_vectors(tower):
    assert isinstance(tower, TowerEmbedder) and tower.id.startswith("tower:")
    means = tower.embed([_picture((200, 30, 30)), _picture((30, 30, 200))])
    assert means.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-5)
    tokens = tower.embed_tokens(_picture((200, 30, 30), size=112))
    assert tokens.shape == (16 + 9, means.shape[1])  # one per 28 px cell of a 112 px query, then 2 x 2 blocks
    np.testing.assert_allclose(np.linalg.norm(tokens, axis=1), 1.0, rtol=1e-5)


def test_a_concept_scores_its_best_token_of_the_query(tower, tmp_path):
    db = ConceptDatabase(tmp_path / "db" / "database.json")
    for name, colour in (("reda", (200, 30, 30)), ("blua", (30, 30, 200)), ("grea", (30, 200, 30))):
        path = tmp_path / f"{name}.png"
        _picture(colour).save(path)
        db.add(Concept(name, name, "toy", f"a {name}", [path]))
    db.save()
    retriever, _ = open_retriever(load_database(db.path), embedder=tower, k=3)
    query = _picture((30, 30, 200), size=112)
    found = retriever.retrieve(query)
    assert all(f.view.startswith(("token view ", "window ")) for f in found)  # not the whole-image grid crops
    # the query's tokens and 2 x 2 blocks, then its 81 half-size windows embedded as references are
    windows = grid_crops(query, steps=9)
    assert len(windows) == 81 and {w.size for w in windows} == {(56, 56)}
    views = np.concatenate([tower.embed_tokens(query), tower.embed(windows)])
    for f in found:  # each score is the best cosine over those views with that reference's mean
        reference = tower.embed([Image.open(f.image)])[0]
        assert f.score == pytest.approx(float((views @ reference).max()), abs=1e-5)
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)
    assert found[0].tag == "<blua>"
    without = open_retriever(load_database(db.path), embedder=tower, k=3, use_grid_crops=False)[0].retrieve(query)
    assert all(f.view.startswith("token view ") for f in without)  # no windows when grid crops are off


def test_a_folder_that_is_no_model_is_explained(tmp_path):
    with pytest.raises(RepicError, match="not a model folder"):
        load_embedder(f"tower:{tmp_path / 'nowhere'}")
