"""MyVLM objects (``snap-research/MyVLM``): ``<concept>/<image>.jpg``, ``<concept>/captions.json`` (or
``captions_augmented.json``, preferred as the code does) and the optional LLaVA VQA file
``<concept>/additional_llava_vqa_data.json``. There is no split on disk: the code draws 4 training images per
concept at random, so the import draws them with a fixed seed and lists them. See ``docs/bench/myvlm.md``.
"""

from __future__ import annotations

import random
from pathlib import Path

from ...errors import RepicError
from ..rows import Manifest
from ._common import Importer, folders_in, natural_key

# Deepayan137/Lewis_Game@621d687:src/inference_utils/common.py, MYVLM_CATEGORY_MAP
CATEGORIES = {
    **dict.fromkeys(("asian_doll", "boy_funko_pop", "chicken_bean_bag", "dangling_child", "gengar_toy",
                     "iverson_funko_pop", "green_doll", "minion_toy", "rabbit_toy", "robot_toy", "sheep_plush",
                     "sheep_toy", "small_penguin"), "toy"),
    **dict.fromkeys(("bull", "cat_statue", "ceramic_head", "elephant_sphere", "elephant_statue", "red_chicken"),
                    "figurine"),
    **dict.fromkeys(("maeve_dog", "billy_dog", "my_cat"), "pet animal"),
    "colorful_teapot": "tea pot", "espresso_cup": "cup", "gold_pineapple": "household object",
    "red_piggy_bank": "piggy bank", "running_shoes": "shoe", "sheep_pillow": "pillow", "skulls_mug": "mug",
}
CAPTION_QUESTION = "Please caption this image of {tag}."  # myvlm/common.py, VLM_TO_PROMPTS (LLaVA captioning)
TRAIN_IMAGES, SEED = 4, 42  # configs/train_config.py: batch_size 4, seed 42
CAPTIONS, AUGMENTED, VQA = "captions.json", "captions_augmented.json", "additional_llava_vqa_data.json"


def import_benchmark(src: Path, out: Path) -> Manifest:
    src = Path(src)
    imp = Importer("myvlm", src, out)
    folders = [f for f in folders_in(src) if (f / AUGMENTED).is_file() or (f / CAPTIONS).is_file()]
    if not folders:
        raise RepicError(f"{src} is not a MyVLM source: expected <concept>/{CAPTIONS} in its concept folders")
    vqa_rows = 0
    for folder in folders:
        name = folder.name
        path = folder / AUGMENTED if (folder / AUGMENTED).is_file() else folder / CAPTIONS
        captions = imp.read_json(path, dict, "{image file: [caption, ...]}")
        keys = sorted(captions, key=natural_key)
        train = sorted(random.Random(f"{SEED}/{name}").sample(keys, min(TRAIN_IMAGES, max(len(keys) - 1, 0))),
                       key=natural_key)
        tag = imp.concept(name, CATEGORIES.get(name, "object"), [folder / key for key in train])
        for key in keys:
            if key in train:
                continue
            texts = captions[key]
            where = f"{imp.rel(path)}: {key}"
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise RepicError(f"{where}: expected a list of captions")
            imp.row(kind="caption", question=CAPTION_QUESTION.format(tag=tag), concepts=[tag], source=where,
                    answer=[t.replace(name, tag) for t in texts], image=folder / key)
        if (folder / VQA).is_file():
            vqa = imp.read_json(folder / VQA, dict, "{image path: [[question, answer], ...]}")
            for image, pairs in vqa.items():
                where = f"{imp.rel(folder / VQA)}: {image}"
                located = imp.locate(image, folder)
                if Path(image).name in train:
                    continue
                if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                    raise RepicError(f"{where}: expected a list of [question, answer] pairs")
                for question, answer in pairs:
                    vqa_rows += imp.row(kind="open", question=str(question).replace(name, tag), answer=str(answer),
                                        concepts=[tag], image=located, source=where) is not None
        imp.notes.append(f"{name}: reference images (drawn with seed {SEED}, not the draw of MyVLM's own run): "
                         f"{', '.join(train)}")
    if vqa_rows:
        imp.notes.append(f"{vqa_rows} open rows come from {VQA}, whose answers LLaVA generated: a check of "
                         "agreement with LLaVA, not human truth")
    return imp.finish()
