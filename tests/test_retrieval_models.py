"""Retrieval through transformers models: CLIP / SigLIP embedders and OWLv2 / Grounding DINO crops.

Every model is a tiny random-weight config saved to a local folder, so the tests run offline and check
the loading, the calls and the box arithmetic, not what a trained model sees.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repic.concepts.detect import Detection, ObjectDetector, standard_box_iou, suppress_overlaps
from repic.concepts.embed import HFImageEmbedder, load_embedder
from repic.concepts.retrieve import Retriever
from repic.errors import RepicError

transformers = pytest.importorskip("transformers")


def clip_tokenizer(folder: Path):
    """A character-level CLIP tokenizer; start/end tokens are not id 0, which OWL reads as 'no query'."""
    vocab: dict[str, int] = {}
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")


TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
TINY_VISION = {**TINY_TEXT, "image_size": 32, "patch_size": 16}


@pytest.fixture(scope="module")
def embedders(tmp_path_factory) -> dict[str, Path]:
    """Tiny CLIP and SigLIP folders, and a BERT folder with an image processor (a model with no image side)."""
    root = tmp_path_factory.mktemp("embedders")
    torch.manual_seed(0)
    text = {**TINY_TEXT, "vocab_size": 60}
    transformers.CLIPModel(
        transformers.CLIPConfig(text_config=text, vision_config=TINY_VISION, projection_dim=16)
    ).save_pretrained(root / "clip")
    transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=TINY_VISION)).save_pretrained(
        root / "siglip"
    )
    transformers.BertModel(transformers.BertConfig(**text)).save_pretrained(root / "bert")
    for name in ("clip", "bert"):
        transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ).save_pretrained(root / name)
    transformers.SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "siglip")
    return {name: root / name for name in ("clip", "siglip", "bert")}


@pytest.fixture(scope="module")
def owlv2(tmp_path_factory) -> Path:
    """A tiny OWLv2 whose box regression is zeroed: every patch predicts its own grid cell (a 4 x 4 grid of
    quarter-size boxes centred on the cells' far corners), so the boxes can be computed by hand."""
    folder = tmp_path_factory.mktemp("owlv2")
    tokenizer = clip_tokenizer(folder)
    torch.manual_seed(0)
    model = transformers.Owlv2ForObjectDetection(
        transformers.Owlv2Config(
            text_config={**TINY_TEXT, "vocab_size": len(tokenizer), "max_position_embeddings": 16},
            vision_config={**TINY_VISION, "image_size": 64},
            projection_dim=32,
        )
    )
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    model.save_pretrained(folder)
    transformers.Owlv2Processor(
        image_processor=transformers.Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def grounding_dino(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dino")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "cat", "robot"]
    (folder / "bert-vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    config = transformers.GroundingDinoConfig(
        backbone_config=transformers.SwinConfig(
            embed_dim=16, depths=[1, 1], num_heads=[1, 1], window_size=2, image_size=64, out_features=["stage1", "stage2"]
        ),
        text_config=transformers.BertConfig(
            vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        ),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, num_feature_levels=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=32, use_timm_backbone=False, backbone=None, use_pretrained_backbone=False,
    )
    transformers.GroundingDinoForObjectDetection(config).save_pretrained(folder)
    transformers.GroundingDinoProcessor(
        image_processor=transformers.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}),
        tokenizer=transformers.BertTokenizer(str(folder / "bert-vocab.txt")),
    ).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------ embedders
@pytest.mark.parametrize("family, dim", [("clip", 16), ("siglip", 32)])
def test_clip_family_embeddings_are_unit_rows_with_a_fingerprinted_id(embedders, family, dim):
    embedder = load_embedder(embedders[family])
    assert isinstance(embedder, HFImageEmbedder)
    images = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("L", (20, 20), 90)]  # any size or mode
    vectors = embedder.embed(images)
    assert vectors.shape == (2, dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.id.startswith(f"hf:{embedders[family]}@") and len(embedder.id.rsplit("@", 1)[1]) == 12
    assert np.allclose(vectors, load_embedder(embedders[family]).embed(images), atol=1e-6)  # deterministic


def test_unloadable_embedders_are_explained(embedders, tmp_path):
    with pytest.raises(RepicError, match="cannot load the image embedder .* or 'builtin'"):
        load_embedder(tmp_path / "no-such-model")
    with pytest.raises(RepicError, match="is a BertModel, which has no image embedding"):
        load_embedder(embedders["bert"])


# ------------------------------------------------------------------------------------------ detectors
def test_owlv2_boxes_are_mapped_through_its_square_padding(owlv2):
    # OWLv2 pads a 120 x 80 image to a 120 x 120 square. Each of the 4 x 4 patches predicts a quarter-size
    # box (30 px) centred on its grid corner: centres 30, 60, 90, 120 on both axes. Clipped to the image,
    # the rows centred at 90 (75..105 -> 75..80, 5 px) and 120 fall under min_side 8, leaving 2 rows x 4
    # columns; the last column is cut at x = 120 (105..135 -> 105..120).
    detector = ObjectDetector(owlv2, threshold=0.0, max_crops=10)
    found = detector.detect(Image.new("RGB", (120, 80), (200, 10, 10)), ["cat", "robot", "cat"])
    boxes = sorted(tuple(round(v) for v in d.box) for d in found)
    expected = sorted((x1, y1, min(x1 + 30, 120), y1 + 30) for x1 in (15, 45, 75, 105) for y1 in (15, 45))
    assert boxes == expected
    assert {d.label for d in found} <= {"cat", "robot"}
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    crops = ObjectDetector(owlv2, threshold=0.0).crops(Image.new("RGB", (120, 80)), ["cat"])
    assert [crop.size for crop in crops].count((30, 30)) >= 4 and len(crops) == 6  # max_crops default
    assert detector.detect(Image.new("RGB", (120, 80)), []) == []


@pytest.mark.slow
def test_grounding_dino_detections_stay_inside_the_image(grounding_dino):
    detector = ObjectDetector(grounding_dino, threshold=0.0, min_side=1, max_crops=4)
    found = detector.detect(Image.new("RGB", (120, 80), (10, 200, 10)), ["cat", "robot"])
    assert 1 <= len(found) <= 4
    for detection in found:
        x1, y1, x2, y2 = detection.box
        assert 0 <= x1 < x2 <= 120 and 0 <= y1 < y2 <= 80 and detection.label


def test_detector_crops_join_the_retrieval_views(owlv2, tmp_path):
    from repic.concepts import ConceptDatabase
    from repic.concepts.embed import ColourEmbedder
    from repic.concepts.index import open_index
    from repic.records import Concept

    db = ConceptDatabase(tmp_path / "database.json")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "r.png")
    db.add(Concept("red", "red", "cat", "", [tmp_path / "r.png"]), store="reference")
    embedder = ColourEmbedder()
    detector = ObjectDetector(owlv2, threshold=0.0, max_crops=2)
    retriever = Retriever(db, open_index(db, embedder).index, embedder, k=1, use_grid_crops=False, detector=detector)
    views = [name for name, _ in retriever.views(Image.new("RGB", (120, 80)))]
    assert views == ["image", "crop 1 (cat)", "crop 2 (cat)"]


def test_a_model_that_is_not_a_detector_is_refused(embedders, owlv2):
    with pytest.raises(RepicError, match="cannot load the detector"):
        ObjectDetector(embedders["clip"])  # CLIP has no zero-shot detection head
    with pytest.raises(RepicError, match="use 0 <= threshold < 1"):
        ObjectDetector(owlv2, threshold=1.5)


@pytest.mark.parametrize(
    "a, b, iou, why",
    [
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150, "half overlap: 50 shared of 150"),
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0, "identical"),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0, "touching edges share no area"),
    ],
)
def test_standard_box_iou_by_hand(a, b, iou, why):
    assert standard_box_iou(a, b) == pytest.approx(iou), why


def test_overlapping_detections_keep_the_best():
    detections = [
        Detection((0, 0, 10, 10), "cat", 0.5),
        Detection((1, 0, 11, 10), "dog", 0.9),  # IoU 90/110 = 0.82 with the first: suppresses it
        Detection((20, 0, 30, 10), "cat", 0.3),
    ]
    assert [d.score for d in suppress_overlaps(detections, 0.5)] == [0.9, 0.3]
