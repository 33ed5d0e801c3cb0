"""``repic bench import``: every source format, written here in its own layout with tiny images, read into
one benchmark folder (rows, database, manifest), plus the refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from repic.bench.formats import FORMATS, import_folder
from repic.bench.rows import read_manifest, read_rows
from repic.bench.score import score_benchmark
from repic.cli.bench_cmd import app
from repic.concepts.database import load_database
from repic.errors import RepicError


def png(path: Path, color=(90, 120, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_kind(out: Path, kind: str):
    return [row for row in read_rows(out) if row.kind == kind]


def database(out: Path) -> dict:
    return json.loads((out / "database.json").read_text())["concept_dict"]


def check_images(out: Path) -> None:
    """Every row's image and every reference image is in the folder."""
    for row in read_rows(out):
        if row.image is not None:
            assert (out / row.image).is_file(), row.image
    for entry in database(out).values():
        assert (out / entry["image"]).is_file() and entry["image"].startswith("references/")
    loaded = load_database(out / "database.json")  # the concept database reads back, images found
    assert all(image.is_file() for concept in loaded.concepts.values() for image in concept.images)


def scores_perfectly(out: Path, tmp_path: Path) -> dict:
    """The imported folder scored (``repic bench score``) against answers that are its own truth: every kind
    the format has scores 100 %, so what an import writes is what the scorer reads."""
    rows = read_rows(out)
    lines = []
    for row in rows:
        if row.kind == "choice":
            answer = "ABCDEFGHIJKLMNOP"[row.answer]
        elif row.kind == "caption":
            answer = ("A photo of " + " and ".join(row.concepts) + ".") if row.concepts else "A photo."
        else:
            answer = row.answer
        lines.append({"id": row.id, "kind": row.kind, "answer": answer})
    predictions = tmp_path / "run" / "predictions.jsonl"
    predictions.parent.mkdir(exist_ok=True)
    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results = score_benchmark(predictions, out)
    kinds = {row.kind for row in rows}
    assert kinds and all(results[kind]["rows"] == sum(row.kind == kind for row in rows) for kind in kinds)
    for kind in kinds & {"recognition", "choice", "open"}:
        assert results[kind]["accuracy"] == 1.0, (kind, results[kind])
    if "recognition" in kinds:
        assert results["recognition"]["unclear"] == 0
    if "caption" in kinds and results["caption"]["official"] is not None:
        assert results["caption"]["official"]["f1"] == 1.0 and results["caption"]["strict"]["f1"] == 1.0
    return results


# ------------------------------------------------------------------------------------------------ yollava
def yollava_source(root: Path) -> Path:
    data = root / "yollava-data"
    for name in ("bo", "mam", "brown-duck"):
        png(data / "train" / name / "0.png")
    png(data / "test" / "bo" / "0.png"), png(data / "test" / "bo" / "1.png")
    png(data / "test" / "mam" / "0.png"), png(data / "test" / "brown-duck" / "0.png")
    (data / "test" / "brown-duck" / "1.png").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\n")
    write_json(data / "yollava-visual-qa.json", {
        "bo": {"./yollava-data/test/bo/0.png": {"question": "What color is <sks>?",
                                                "options": {"A": "Brown", "B": "Black"}, "correct_answer": "A"}},
        "brown-duck": {"./yollava-data/test/brown-duck/0.png": {
            "question": "What type of animal is <sks>?", "options": {"A": "Duck", "B": "Crocodile"},
            "correct_answer": "B"}},
    })
    write_json(root / "yollava-text-only-qa.json", {
        "bo": {"0": {"question": "Is sks a dog?", "option": {"A": "Yes", "B": "No"}, "correct_answer": "A"},
               "1": {"question": "Does sks bark?", "option": {"A": "Yes", "B": "No"}, "correct_answer": "A"}},
        "mam": {"0": {"question": "Is sks a dog?", "option": {"A": "Yes", "B": "No"}, "correct_answer": "B"}},
    })
    return root


def test_yollava(tmp_path):
    src, out = yollava_source(tmp_path / "YoLLaVA"), tmp_path / "bench"
    manifest = import_folder("yollava", src, out)
    assert manifest.counts == {"recognition": 12, "choice": 5} and manifest.concepts == 3
    assert manifest.missing_images == ["yollava-data/test/brown-duck/1.png"]
    assert manifest.hashes == {"yollava-data/yollava-visual-qa.json": sha(src / "yollava-data/yollava-visual-qa.json"),
                               "yollava-text-only-qa.json": sha(src / "yollava-text-only-qa.json")}
    recognition = by_kind(out, "recognition")
    assert sum(r.answer == "yes" for r in recognition) == 4
    on_mam = {r.concepts[0]: r for r in recognition if r.source == "test/mam/0.png"}
    assert on_mam["<mam>"].answer == "yes" and on_mam["<mam>"].negative is None
    assert on_mam["<bo>"].negative == "same_category" and on_mam["<brown-duck>"].negative == "other_category"
    assert on_mam["<bo>"].question == "Is <bo> in this photo? Answer with a single word or phrase."
    choice = by_kind(out, "choice")
    visual, text = [r for r in choice if r.image], [r for r in choice if r.image is None]
    assert [(r.question, r.options, r.answer) for r in visual] == [
        ("What color is <bo>?", ["Brown", "Black"], 0), ("What type of animal is <brown-duck>?", ["Duck", "Crocodile"], 1)]
    assert [(r.question, r.answer) for r in text] == [("Is <bo> a dog?", 0), ("Does <bo> bark?", 0), ("Is <mam> a dog?", 1)]
    notes = " | ".join(manifest.notes)
    assert "brown-duck" in notes and "RAP's copy says A" in notes
    assert "3 recognition row(s) left out because their image is missing" in notes
    assert "option A is right in 3 of 5 rows (60.0 %)" in notes
    assert set(database(out)) == {"<bo>", "<mam>", "<brown-duck>"} and database(out)["<bo>"]["category"] == "pet animal"
    assert read_manifest(out)["counts"] == manifest.counts
    check_images(out)
    scores_perfectly(out, tmp_path)


# ---------------------------------------------------------------------------------------------------- rap
def test_rap(tmp_path):
    src, out = tmp_path / "RAP-MLLM", tmp_path / "bench"
    for name in ("bo", "mam", "rex"):
        png(src / "example_database" / f"{name}.png")
    write_json(src / "example_database" / "database.json", {"concept_dict": {
        "<bo>": {"name": "bo", "image": "example_database/bo.png", "info": "<bo> is a Shiba Inu.", "category": "dog"},
        "<mam>": {"name": "mam", "image": ["example_database/mam.png"], "info": "a cat", "category": "cat"},
        "<rex!>": {"name": "rex!", "image": "example_database/rex.png", "info": "", "category": "dog"},
    }, "path_to_concept": {}})
    png(src / "yollava-data/test/bo/0.png"), png(src / "yollava-data/test/mam/0.png")
    question = "<image>\nIs <{}> in this image? Answer with a single word or phrase."
    records = []
    for shown in ("bo", "mam"):
        image = f"yollava-data/test/{shown}/0.png"
        records.append({"image": image, "question": question.format(shown), "concept": shown, "type": "positive",
                        "correct_answer": True})
        for asked in ("bo", "mam"):
            records.append({"image": image, "question": question.format(asked), "concept": asked,
                            "type": "negative", "correct_answer": asked == shown})
    write_json(src / "eval/recognition_test.json", records)
    write_json(src / "eval/yollava-visual-qa.json", {
        "bo": {"./yollava-data/test/bo/0.png": {"question": "What color is sks?",
                                                "options": {"A": "Brown", "B": "Black"}, "correct_answer": "A"}},
        "brown-duck": {"./yollava-data/test/brown-duck/0.png": {
            "question": "What type of animal is sks?", "options": {"A": "Duck", "B": "Crocodile"}, "correct_answer": "A"}},
    })
    write_json(src / "eval/yollava-text-only-qa.json", {
        "bo": {str(i): {"question": f"Q{i} about sks?", "option": {"A": "x", "B": "y"}, "correct_answer": "A"}
               for i in range(3)},
        "mam": {"0": {"question": "Is sks a cat?", "option": {"A": "No", "B": "Yes"}, "correct_answer": "B"}},
    })
    png(src / "query/bo_and_mam.png")
    write_json(src / "eval/caption_multi.json", {"query/bo_and_mam.png": ["<bo>", "<mam>"]})

    manifest = import_folder("rap", src, out)
    assert manifest.counts == {"recognition": 4, "choice": 5, "caption": 1}
    recognition = by_kind(out, "recognition")
    assert [(r.concepts[0], r.answer, r.negative) for r in recognition] == [
        ("<bo>", "yes", None), ("<mam>", "no", "other_category"), ("<mam>", "yes", None), ("<bo>", "no", "other_category")]
    assert recognition[1].question == "Is <mam> in this image? Answer with a single word or phrase."
    choice = by_kind(out, "choice")
    assert choice[0].question == "What color is <bo>?" and choice[0].image.startswith("images/")
    assert [r.answer for r in choice[1:]] == [0, 0, 0, 1] and all(r.image is None for r in choice[1:])
    caption = by_kind(out, "caption")[0]
    assert caption.concepts == ["<bo>", "<mam>"] and caption.answer == []
    assert manifest.missing_images == ["yollava-data/test/brown-duck/0.png"]
    notes = " | ".join(manifest.notes)
    assert "2 'negative' records answer true" in notes
    assert "'rex!' breaks the tag rule" in notes and "<rex->" in notes
    assert "1 choice row(s) left out" in notes and "option A is right in 4 of 5 rows (80.0 %)" in notes
    db = database(out)
    assert {"<bo>", "<mam>", "<rex->"} <= set(db) and db["<bo>"]["info"] == "<bo> is a Shiba Inu."
    assert "<brown-duck>" not in db and "no readable reference image" in notes
    assert set(manifest.hashes) == {"example_database/database.json", "eval/recognition_test.json",
                                    "eval/yollava-visual-qa.json", "eval/yollava-text-only-qa.json",
                                    "eval/caption_multi.json"}
    check_images(out)
    scores_perfectly(out, tmp_path)


# -------------------------------------------------------------------------------------------------- myvlm
def test_myvlm(tmp_path):
    src, out = tmp_path / "myvlm_data", tmp_path / "bench"
    for i in range(6):
        png(src / "asian_doll" / f"{i}.jpg")
    write_json(src / "asian_doll/captions.json", {f"{i}.jpg": [f"asian_doll on table {i}.", "a photo of asian_doll"]
                                                  for i in range(6)})
    for i in range(5):
        png(src / "bull" / f"{i}.jpg", (10, 10, 10))
    write_json(src / "bull/captions.json", {f"{i}.jpg": ["old"] for i in range(5)})
    write_json(src / "bull/captions_augmented.json", {f"{i}.jpg": [f"bull in a field {i}"] for i in range(5)})
    write_json(src / "bull/additional_llava_vqa_data.json",
               {f"/home/someone/data/bull/{i}.jpg": [["What color is bull?", "brown"]] for i in range(5)})
    manifest = import_folder("myvlm", src, out)
    assert manifest.counts == {"caption": 3, "open": 1} and manifest.concepts == 2
    db = database(out)
    assert len(db["<asian_doll>"]["images"]) == 4 and db["<bull>"]["category"] == "figurine"
    references = {Path(p).name for p in db["<bull>"]["images"]}
    captions = by_kind(out, "caption")
    bull = [r for r in captions if r.concepts == ["<bull>"]]
    assert len(bull) == 1 and Path(bull[0].image).name not in references
    assert bull[0].answer == [f"<bull> in a field {Path(bull[0].image).stem}"]  # the augmented captions win
    doll = [r for r in captions if r.concepts == ["<asian_doll>"]][0]
    assert doll.question == "Please caption this image of <asian_doll>." and doll.answer[1] == "a photo of <asian_doll>"
    vqa = by_kind(out, "open")[0]
    assert vqa.question == "What color is <bull>?" and vqa.answer == "brown" and vqa.image == bull[0].image
    assert "bull/captions_augmented.json" in manifest.hashes and "bull/captions.json" not in manifest.hashes
    assert any("LLaVA generated" in n for n in manifest.notes) and manifest.missing_images == []
    check_images(out)
    scores_perfectly(out, tmp_path)


# ----------------------------------------------------------------------------------------------- mc-llava
def test_mc_llava_uses_the_file_roles_of_its_code(tmp_path):
    src, out = tmp_path / "MulBench", tmp_path / "bench"
    case = src / "two_concept"
    write_json(src / "concept_type.json", {"Anna": "two_concept", "Elsa": "two_concept"})
    for name in ("Anna", "Elsa"):
        png(case / "concept/train" / name / "0.png"), png(case / "concept/train" / name / "0_mask.png")
        png(case / "concept/train" / name / "1.png")
        png(case / "concept/test" / name / "0.png"), png(case / "concept/test" / name / "1.png")
    absolute = "/workspace/data/MulBench/two_concept"
    test = case / "concept/test/Anna"
    write_json(test / "choice.json", {f"{absolute}/concept/test/Anna/0.png": {
        "Human": "What is <Anna> holding?\nA. A sword\nB. A cup\nC. A book", "AI": "B"}})
    write_json(test / "vqa.json", {f"{absolute}/concept/test/Anna/1.png": {"Human": "What color is <Anna>'s hair?",
                                                                          "AI": "Red"}})
    write_json(test / "qa.json", [{"question": "Who is <Anna>'s sister?\nA. <Elsa>\nB. Olaf", "answer": "A"}])
    multi = case / "multi/Anna_Elsa"
    png(multi / "0.png")
    turn = {"Human": "Who is on the left?\nA. <Anna>\nB. <Elsa>", "AI": "A"}
    write_json(multi / "choice.json", {f"{absolute}/multi/Anna_Elsa/0.png": [turn, turn, turn]})
    write_json(multi / "vqa.json", {f"{absolute}/multi/Anna_Elsa/0.png": [{"Human": "What are they doing?",
                                                                           "AI": "Singing"}]})
    write_json(multi / "qa.json", [{"question": "Are <Anna> and <Elsa> sisters?\nA. No\nB. Yes", "answer": "B"}])
    write_json(multi / "position.json", {f"{absolute}/multi/Anna_Elsa/0.png": {"Anna": "left", "Elsa": None}})

    manifest = import_folder("mc-llava", src, out)
    assert manifest.counts == {"recognition": 10, "caption": 5, "choice": 6, "open": 2}
    recognition = by_kind(out, "recognition")
    assert sum(r.answer == "yes" for r in recognition) == 6
    assert sorted((r.concepts[0], r.source) for r in recognition if r.answer == "no") == [
        ("<Anna>", "two_concept/concept/test/Elsa/0.png"), ("<Anna>", "two_concept/concept/test/Elsa/1.png"),
        ("<Elsa>", "two_concept/concept/test/Anna/0.png"), ("<Elsa>", "two_concept/concept/test/Anna/1.png")]
    choice = by_kind(out, "choice")
    single = [r for r in choice if r.question == "What is <Anna> holding?"][0]
    assert single.options == ["A sword", "A cup", "A book"] and single.answer == 1 and single.image
    text = [r for r in choice if r.image is None]  # qa.json: text-only, as the code reads it
    assert [(r.question, r.answer, r.extra["type"]) for r in text] == [
        ("Who is <Anna>'s sister?", 0, "s"), ("Are <Anna> and <Elsa> sisters?", 1, "m")]
    assert [r.extra["type"] for r in choice if r.question == "Who is on the left?"] == ["mi_sq", "mi_sq", "mi_mq"]
    opened = by_kind(out, "open")  # vqa.json: open questions on the image
    assert [(r.answer, r.image is not None) for r in opened] == [("Red", True), ("Singing", True)]
    multi_caption = [r for r in by_kind(out, "caption") if r.extra["type"] == "mi"][0]
    assert multi_caption.concepts == ["<Anna>"]
    db = database(out)
    assert len(db["<Anna>"]["images"]) == 2 and db["<Elsa>"]["category"] == "character"
    assert "concept_type.json" in manifest.hashes and "two_concept/multi/Anna_Elsa/position.json" in manifest.hashes
    check_images(out)
    scores_perfectly(out, tmp_path)


# --------------------------------------------------------------------------------------------------- mmpb
def test_mmpb(tmp_path):
    src, out = tmp_path / "MMPB", tmp_path / "bench"
    png(src / "human/train/alice/0.png"), png(src / "human/train/alice/1.png")
    png(src / "human/test/alice/recognition/0.png"), png(src / "human/test/alice/recognition/negative1.png")
    png(src / "human/test/alice/preference/likes0.png")
    header = ("index,question,A,B,C,D,image_path,answer,attribute,category,l2-category,concept,target,name,"
              "preference,description_simple,description_moderate,description_detailed,description_super_detailed,"
              "prompt")
    rows = [
        '0,Is <alice> in this image?,,,,,human/test/alice/recognition/0.png,4,human,recognition,awareness,alice,,'
        'alice,likes tea,a woman,a woman with red hair,d,sd,',
        '1,Is <alice> in this image?,,,,,human/test/alice/recognition/negative1.png,5,human,recognition,awareness,'
        'alice,Homo,alice,likes tea,a woman,a woman with red hair,d,sd,',
        '2,What would <alice> drink?,tea,coffee,,,human/test/alice/preference/likes0.png,B,human,preference,'
        'inconsistency,alice,,alice,likes tea,a woman,a woman with red hair,d,sd,',
        '3,Would <alice> like this?,,,,,human/test/alice/preference/likes0.png,Yes,human,preference,awareness,'
        'alice,,alice,likes tea,a woman,a woman with red hair,d,sd,',
        '4,Is <bob?> here?,,,,,human/test/bob/recognition/0.png,No,human,recognition,awareness,bob,Hetro,bob?,,'
        'a man,a tall man,d,sd,',
    ]
    (src / "dataset.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    manifest = import_folder("mmpb", src, out)
    assert manifest.counts == {"recognition": 2, "choice": 1, "open": 1}
    recognition = by_kind(out, "recognition")
    assert [(r.answer, r.negative) for r in recognition] == [("yes", None), ("no", "same_category")]
    choice = by_kind(out, "choice")[0]
    assert choice.options == ["tea", "coffee"] and choice.answer == 1 and choice.extra["l2-category"] == "inconsistency"
    assert by_kind(out, "open")[0].answer == "yes"
    assert manifest.missing_images == ["human/test/bob/recognition/0.png"]
    notes = " | ".join(manifest.notes)
    assert "'bob?' breaks the tag rule" in notes and "1 recognition row(s) left out" in notes
    assert "no readable reference image" in notes and "<bob->" in notes
    db = database(out)
    assert set(db) == {"<alice>"} and db["<alice>"]["info"] == "a woman with red hair"
    assert db["<alice>"]["category"] == "human" and len(db["<alice>"]["images"]) == 2
    assert manifest.hashes == {"dataset.csv": sha(src / "dataset.csv")}
    check_images(out)
    scores_perfectly(out, tmp_path)


# -------------------------------------------------------------------------------------------------- perva
def test_perva_takes_the_category_from_the_path(tmp_path):
    src, out = tmp_path / "PerVA", tmp_path / "bench"
    for category, concept in (("bag", "alx"), ("bag", "ash"), ("cup", "alx")):
        png(src / "train" / category / concept / "0.png")
        png(src / "test" / category / concept / "0.png")
    png(src / "train/bag/alx/laion/neg.png"), png(src / "test/bag/alx/1.png")
    manifest = import_folder("perva", src, out)
    assert manifest.counts == {"recognition": 12} and manifest.concepts == 3 and manifest.hashes == {}
    db = database(out)
    assert set(db) == {"<bag-alx>", "<ash>", "<cup-alx>"} and db["<cup-alx>"]["category"] == "cup"
    assert "images" not in db["<bag-alx>"]  # the laion negatives are not references
    rows = [r for r in by_kind(out, "recognition") if r.source == "test/bag/alx/1.png"]
    assert {r.concepts[0]: (r.answer, r.negative) for r in rows} == {
        "<bag-alx>": ("yes", None), "<ash>": ("no", "same_category"), "<cup-alx>": ("no", "other_category")}
    assert any("more than one category" in n for n in manifest.notes)
    check_images(out)
    scores_perfectly(out, tmp_path)


# --------------------------------------------------------------------------------------------- dreambooth
def test_dreambooth(tmp_path):
    src, out = tmp_path / "dreambooth", tmp_path / "bench"
    for name in ("dog", "dog2", "teapot"):
        for i in range(3):
            png(src / "dataset" / name / f"{i:02d}.jpg")
    (src / "dataset/prompts_and_classes.txt").write_text(
        "Classes\n\nsubject_name,class\ndog,dog\ndog2,dog\nteapot,teapot\n\nPrompts\n\nObject Prompts\n"
        "prompt_list = [\n'a {0} {1} in the jungle'.format(unique_token, class_token),\n]\n")
    manifest = import_folder("dreambooth", src, out)
    assert manifest.counts == {"caption": 6, "recognition": 18} and manifest.concepts == 3
    db = database(out)
    assert db["<dog2>"]["category"] == "dog" and db["<dog>"]["image"].endswith("00.jpg")
    assert all(not r.source.endswith("00.jpg") for r in read_rows(out))
    on_dog = {r.concepts[0]: (r.answer, r.negative) for r in by_kind(out, "recognition") if r.source == "dog/01.jpg"}
    assert on_dog == {"<dog>": ("yes", None), "<dog2>": ("no", "same_category"), "<teapot>": ("no", "other_category")}
    assert manifest.hashes == {"dataset/prompts_and_classes.txt": sha(src / "dataset/prompts_and_classes.txt")}
    check_images(out)
    scores_perfectly(out, tmp_path)


# -------------------------------------------------------------------------------------------------- repic
def test_repic_templates(tmp_path):
    repo, out = tmp_path / "RePIC", tmp_path / "bench"
    templates = write_json(repo / "data/query_tot/dreambooth_query_templates.json", {
        "./data/dreambooth/dog/00.jpg": ["<dog>"], "./data/dreambooth/cat/00.jpg": ["<cat>"]})
    png(repo / "data/dreambooth/dog/00.jpg")
    base = repo / "data/database_tot/database_dreambooth"
    png(base / "dog.jpg"), png(base / "cat.jpg")
    write_json(base / "database.json", {"concept_dict": {
        "<dog>": {"name": "dog", "image": "./database/dog.jpg", "info": "a corgi", "category": "dog"},
        "<cat>": {"name": "cat", "image": "./database/cat.jpg", "info": "a cat", "category": "cat"}}})
    manifest = import_folder("repic", templates, out)
    assert manifest.counts == {"caption": 1} and manifest.concepts == 2
    assert by_kind(out, "caption")[0].concepts == ["<dog>"]
    assert manifest.missing_images == ["data/dreambooth/cat/00.jpg"]
    assert set(manifest.hashes) == {"data/query_tot/dreambooth_query_templates.json",
                                    "data/database_tot/database_dreambooth/database.json"}
    assert database(out)["<dog>"]["info"] == "a corgi"
    with pytest.raises(RepicError, match="dreambooth_query_templates.json"):
        import_folder("repic", repo, tmp_path / "other")
    check_images(out)
    scores_perfectly(out, tmp_path)


# ------------------------------------------------------------------------------------------ refusals, CLI
def test_every_format_has_a_test():
    assert set(FORMATS) == {"myvlm", "yollava", "rap", "mc-llava", "mmpb", "perva", "dreambooth", "repic"}


def test_unknown_format_and_missing_source(tmp_path):
    with pytest.raises(RepicError, match="unknown benchmark format 'llava'.*myvlm, yollava, rap"):
        import_folder("llava", tmp_path, tmp_path / "out")
    with pytest.raises(RepicError, match="does not exist"):
        import_folder("yollava", tmp_path / "nowhere", tmp_path / "out")


def test_wrong_layout_names_the_file_and_key(tmp_path):
    with pytest.raises(RepicError, match="concept_type.json"):
        import_folder("mc-llava", tmp_path, tmp_path / "out")
    src = yollava_source(tmp_path / "y")
    write_json(src / "yollava-data/yollava-visual-qa.json", {"bo": {"./x.png": {"question": "q?", "answer": "A"}}})
    with pytest.raises(RepicError, match=r"yollava-visual-qa.json: bo / ./x.png: expected the key 'options'"):
        import_folder("yollava", src, tmp_path / "out")
    write_json(src / "yollava-data/yollava-visual-qa.json", [1, 2])
    with pytest.raises(RepicError, match="expected a JSON object"):
        import_folder("yollava", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a failed import leaves nothing behind


def test_out_is_refused_unless_an_earlier_benchmark_and_overwrite(tmp_path):
    src = yollava_source(tmp_path / "y")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(RepicError, match="holds no manifest.json"):
        import_folder("yollava", src, busy)
    assert (busy / "notes.txt").read_text() == "mine"
    out = tmp_path / "bench"
    import_folder("yollava", src, out)
    with pytest.raises(RepicError, match="--overwrite"):
        import_folder("yollava", src, out)
    (out / "stale.txt").write_text("old")
    import_folder("yollava", src, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "manifest.json").is_file()


def test_cli_prints_one_summary_line(tmp_path):
    src, out = yollava_source(tmp_path / "y"), tmp_path / "bench"
    result = CliRunner().invoke(app, ["import", "yollava", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "12 recognition, 5 choice; 3 concepts; 1 missing images" in result.output
    listing = CliRunner().invoke(app, ["formats"])
    assert listing.exit_code == 0 and all(name in listing.output for name in FORMATS)
    refused = CliRunner().invoke(app, ["import", "nope", str(src), "--out", str(tmp_path / "x")])
    assert isinstance(refused.exception, RepicError) and "mc-llava" in str(refused.exception)
