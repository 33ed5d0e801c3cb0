"""The gradio page of ``repic app``: a Caption tab, a Concepts tab and a Model tab.

- **Caption**: drop or paste a photo; let retrieval choose the top-K concepts (the references shown
  beside the caption, with their similarity) or pick them by hand (skip-retrieval); the caption comes
  back with the names it contains highlighted. Below, one concept can be asked about: "is it in the
  photo?" (OCT) and "where is it?" (VLT, the box drawn on the photo).
- **Concepts**: the database as a gallery (first reference image, tag, category, description); add a
  concept from uploaded images, a name, a category and a description; edit one (its fields, or new
  reference images in place of the old); remove one (a box to tick first). Edits go through ``repic.serve.store.ConceptStore``: locked, atomic, the index refreshed.
- **Model**: load another model folder, hub id or LoRA adapter folder, and the generation settings.

Every handler turns the service's errors (``RepicError``: a non-image upload, an empty or duplicate
name, an unknown concept) into a message on the page, never a traceback, and writes nothing then.
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
from PIL import Image, ImageDraw

from ..errors import RepicError
from ..prompts import eval_question
from ..serve.defaults import known_models
from ..serve.service import CaptionService
from ..serve.uploads import decode_image

RETRIEVE, PICK = "Retrieve them (top-K)", "Pick them by hand"


def _e(text: object) -> str:
    """``text`` safe inside Markdown: ``<bo>`` would otherwise be read as an HTML tag and vanish."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _problem(exc: Exception) -> str:
    return f"**Could not do that:** {_e(exc)}"


def highlighted(caption: str, names: list[str], display: dict[str, str]) -> list[tuple[str, str | None]]:
    """``caption`` cut into ``(text, label)`` pieces, each concept name (tag or display name) labelled.

    >>> highlighted("<bo> sleeps.", ["<bo>"], {"<bo>": "bo"})
    [('<bo>', '<bo>'), (' sleeps.', None)]
    """
    spellings = {}
    for tag in names:
        spellings[tag.lower()] = tag
        if display.get(tag):
            spellings[display[tag].lower()] = tag
    if not spellings:
        return [(caption, None)]
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(s)}(?!\w)" for s in sorted(spellings, key=len, reverse=True)),
                         re.IGNORECASE)
    pieces, last = [], 0
    for match in pattern.finditer(caption):
        if match.start() > last:
            pieces.append((caption[last:match.start()], None))
        pieces.append((match.group(0), spellings[match.group(0).lower()]))
        last = match.end()
    if last < len(caption):
        pieces.append((caption[last:], None))
    return pieces


def build_app(service: CaptionService) -> gr.Blocks:
    """The app's ``gr.Blocks`` over ``service`` (see the module docstring)."""
    store = service.store

    def tags() -> list[str]:
        return [concept.tag for concept in store.database()]

    def concept_gallery() -> list[tuple[str, str]]:
        return [(str(c.images[0]), f"{c.tag} · {c.category}: {c.info}") for c in store.database() if c.images]

    def refreshed(message: str):
        choices = tags()
        return (message, concept_gallery(), gr.Dropdown(choices=choices), gr.Dropdown(choices=choices),
                gr.Dropdown(choices=choices))

    with gr.Blocks(title="repic: personal captions") as app:
        gr.Markdown("# repic: captions that know your concepts\nAdd your concepts (a few photos, a name), "
                    "then drop a new photo: the caption names the ones it shows.")
        with gr.Tab("Caption", id="caption-tab"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(type="pil", label="Photo", sources=["upload", "clipboard"], elem_id="photo")
                    mode = gr.Radio([RETRIEVE, PICK], value=RETRIEVE, label="Which concepts to show the model",
                                    elem_id="mode")
                    top_k = gr.Slider(1, 4, value=2, step=1, label="Top K (retrieval)", elem_id="top-k")
                    picked = gr.Dropdown(choices=tags(), multiselect=True, label="Concepts in the photo (by hand)",
                                         elem_id="picked")
                    question = gr.Textbox(value=eval_question(0), label="Question", elem_id="question")
                    run = gr.Button("Caption", variant="primary", elem_id="caption-button")
                with gr.Column():
                    caption = gr.HighlightedText(label="Caption", elem_id="caption", combine_adjacent=True,
                                                show_inline_category=False, show_legend=False)
                    found = gr.Markdown(elem_id="caption-info")
                    shown = gr.Gallery(label="References shown to the model (similarity)", columns=4, height=200,
                                       preview=False,
                                       object_fit="contain", fit_columns=False, elem_id="references")
            with gr.Accordion("Ask about one concept", open=False):
                with gr.Row():
                    asked = gr.Dropdown(choices=tags(), value=None, label="Concept", elem_id="asked")
                    recognize = gr.Button("Is it in the photo?", elem_id="recognize-button")
                    locate = gr.Button("Where is it?", elem_id="locate-button")
                answer = gr.Markdown(elem_id="ask-info")
                boxed = gr.Image(label="Where the model says it is", interactive=False, elem_id="boxed")
        with gr.Tab("Concepts", id="concepts-tab"):
            gallery = gr.Gallery(value=concept_gallery(), label="Your concepts", columns=6, height=320, preview=False,
                                 object_fit="contain", elem_id="concept-gallery")
            concept_message = gr.Markdown(elem_id="concept-message")
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### Add a concept")
                    new_images = gr.File(file_count="multiple", file_types=["image"], label="Reference images",
                                         elem_id="new-images")
                    new_name = gr.Textbox(label="Name (written <name> in captions)", elem_id="new-name")
                    new_category = gr.Textbox(label="Category (dog, mug, person...)", elem_id="new-category")
                    new_info = gr.Textbox(label="Description", elem_id="new-info")
                    add = gr.Button("Add concept", variant="primary", elem_id="add-button")
                with gr.Column():
                    gr.Markdown("### Edit or remove")
                    chosen = gr.Dropdown(choices=tags(), value=None, label="Concept", elem_id="edit-pick")
                    edit_name = gr.Textbox(label="Name", elem_id="edit-name")
                    edit_category = gr.Textbox(label="Category", elem_id="edit-category")
                    edit_info = gr.Textbox(label="Description", elem_id="edit-info")
                    edit_images = gr.File(file_count="multiple", file_types=["image"], elem_id="edit-images",
                                          label="New reference images (optional: they replace the old ones)")
                    save = gr.Button("Save changes", elem_id="save-button")
                    sure = gr.Checkbox(label="Yes, remove this concept", elem_id="remove-sure")
                    remove = gr.Button("Remove", variant="stop", elem_id="remove-button")
        with gr.Tab("Model", id="model-tab"):
            model_info = gr.Markdown(f"Serving **{_e(service.model_info()['source'])}**", elem_id="model-info")
            current = str(service.model_info()["source"])
            model_path = gr.Dropdown(choices=list(dict.fromkeys([current, *known_models()])), value=current,
                                     allow_custom_value=True, elem_id="model-path",
                                     label="Model: the shipped base, a demo run, or any model folder, hub id or "
                                           "LoRA adapter folder")
            base_path = gr.Textbox(label="Base model (for an adapter, if its config names none)", elem_id="base-path")
            load = gr.Button("Load model", elem_id="load-button")
            max_tokens = gr.Slider(8, service.settings.max_new_tokens_limit, value=service.settings.max_new_tokens,
                                   step=8, label="Max new tokens", elem_id="max-tokens")
            sample = gr.Checkbox(label="Sample (instead of greedy, the paper's evaluation)", elem_id="sample")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Temperature (sampling)")

        # ---------------------------------------------------------------------------------- handlers
        def do_caption(image, how, k, hand, text, tokens, sampling, temp):
            if image is None:
                return None, "**Drop a photo first.**", []
            try:
                settings = service.generation(int(tokens), sample=bool(sampling), temperature=float(temp))
                result = service.caption(image, mode="given" if how == PICK else "retrieve", concepts=hand or [],
                                         question=text or None, top_k=int(k), generation=settings)
            except RepicError as exc:
                return None, _problem(exc), []
            database = store.database()
            display = {c.tag: c.name for c in database}
            found = {r["tag"]: r for r in result["retrieved"]}
            references = []
            for tag in result["concepts_shown"]:
                score = found.get(tag, {}).get("score")
                label = tag if score is None else f"{tag} {score:.2f}"  # the cosine similarity retrieval found
                if tag in database:  # the reference image retrieval matched (the first one when given by hand)
                    images = database.get(tag).images
                    references.append((str(images[found.get(tag, {}).get("reference", 1) - 1]), label))
            names = ", ".join(result["names"]) or "none"
            info = (f"Names in the caption: **{_e(names)}** · shown: {_e(', '.join(result['concepts_shown']))} · "
                    f"{result['timings']['total_s']:.2f} s")
            return highlighted(result["caption"], result["names"], display), info, references

        def do_recognize(image, tag):
            if image is None or not tag:
                return "**Drop a photo and choose a concept first.**"
            try:
                result = service.recognize(image, tag)
            except RepicError as exc:
                return _problem(exc)
            verdict = {True: "yes", False: "no", None: "no clear answer"}[result["present"]]
            return f"Is {_e(result['concept'])} in the photo? **{verdict}** (the model said: {_e(repr(result['raw']))})"

        def do_locate(image, tag):
            if image is None or not tag:
                return "**Drop a photo and choose a concept first.**", None
            try:
                result = service.locate(image, tag)
            except RepicError as exc:
                return _problem(exc), None
            if result["box"] is None:
                return f"No box in the answer (the model said: {_e(repr(result['raw']))})", None
            drawn = image.convert("RGB").copy()
            ImageDraw.Draw(drawn).rectangle(result["box"], outline=(255, 0, 0), width=max(1, drawn.width // 80))
            return f"{_e(result['concept'])} at {result['box']}", drawn

        def read_uploads(files) -> list[Image.Image]:
            images = []
            for number, file in enumerate(files or [], start=1):
                path = Path(file if isinstance(file, str) else getattr(file, "name", file))
                images.append(decode_image(path.read_bytes(), service.settings.images,
                                           what=f"upload {number} ({path.name})"))
            return images

        def do_add(files, name, category, info):
            try:
                if not (name or "").strip():
                    raise RepicError("give the concept a name, e.g. 'bo' (written <bo> in captions)")
                images = read_uploads(files)
                if not images:
                    raise RepicError("upload at least one reference image of the concept")
                concept = store.add(name, category=category or "", images=images, info=info or "")
            except RepicError as exc:  # the form keeps what was typed, so it can be corrected
                return (*refreshed(_problem(exc)), gr.update(), gr.update(), gr.update(), gr.update())
            added = f"Added **{_e(concept.tag)}** ({_e(concept.category)}) with {len(concept.images)} image(s)."
            return (*refreshed(added), None, "", "", "")

        def do_pick(tag):
            if not tag:
                return "", "", ""
            try:
                concept = store.get(tag)
            except RepicError:
                return "", "", ""
            return concept.name, concept.category, concept.info

        def do_save(tag, name, category, info, files):
            if not tag:
                return (*refreshed("**Choose a concept to edit first.**"), gr.update())
            try:
                images = read_uploads(files) or None
                concept = store.update(tag, name=name, category=category, info=info, images=images)
            except RepicError as exc:
                return (*refreshed(_problem(exc)), gr.update())
            return (*refreshed(f"Saved **{_e(concept.tag)}** ({len(concept.images)} reference image(s))."), None)

        def do_remove(tag, confirmed):
            if not tag:
                return (*refreshed("**Choose a concept to remove first.**"), confirmed)
            if not confirmed:
                return (*refreshed(f"Tick **Yes, remove this concept** to remove {_e(tag)}."), False)
            try:
                removed = store.remove(tag)
            except RepicError as exc:
                return (*refreshed(_problem(exc)), False)
            return (*refreshed(f"Removed **{_e(removed.tag)}**."), False)

        def do_load(path, base):
            if not (path or "").strip():
                return "**Give a model folder or hub id.**"
            try:
                info = service.load_model(path.strip(), base=(base or "").strip() or None)
            except RepicError as exc:
                return _problem(exc)
            return f"Serving **{_e(info['source'])}** ({_e(info['mode'])})"

        lists = [concept_message, gallery, picked, asked, chosen]
        run.click(do_caption, [photo, mode, top_k, picked, question, max_tokens, sample, temperature],
                  [caption, found, shown])
        recognize.click(do_recognize, [photo, asked], [answer])
        locate.click(do_locate, [photo, asked], [answer, boxed])
        form = [new_images, new_name, new_category, new_info]
        add.click(do_add, form, [*lists, *form])
        chosen.change(do_pick, [chosen], [edit_name, edit_category, edit_info])
        save.click(do_save, [chosen, edit_name, edit_category, edit_info, edit_images], [*lists, edit_images])
        remove.click(do_remove, [chosen, sure], [*lists, sure])
        load.click(do_load, [model_path, base_path], [model_info])
    return app
