"""The gradio page of ``repic app``: Caption, Concepts and Model tabs over one ``CaptionService``.

Every handler answers on the page: a refusal (``RepicError``) as its message, anything unexpected as a
short note (the traceback goes to the ``repic.app`` log), never gradio's bare "Error". Handlers get the
raw values (``preprocess=False``): gradio opens no photo (each is checked against the service's byte and
pixel limits before its pixels are decoded) and a concept removed meanwhile reaches the handler, which
says so and takes it off every list. Loading another model is off unless ``allow_model_loading``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageDraw, ImageOps

from ..errors import RepicError
from ..inference.inputs import check_image, check_text
from ..prompts import eval_question
from ..serve.defaults import known_models
from ..serve.service import CaptionService
from ..serve.uploads import ImageLimits, ServiceError, decode_data_url, decode_image

RETRIEVE, PICK = "retrieve: the top-K by similarity", "given: pick them by hand"  # the API's and the CLI's mode names
UNEXPECTED = "**Something went wrong** and nothing was changed; the app's log says what. Try again or reload the page."
log = logging.getLogger("repic.app")


def _e(text: object) -> str:
    """``text`` safe inside Markdown: ``<bo>`` would otherwise be read as an HTML tag and vanish."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _problem(exc: Exception) -> str:
    return f"**Could not do that:** {_e(exc)}"


def answering(failed: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A handler that never raises: a ``RepicError`` becomes ``failed(message, *inputs)``, anything else is
    logged with its traceback and becomes ``failed(UNEXPECTED, *inputs)``."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def run(*inputs: Any) -> Any:
            try:
                return handler(*inputs)
            except RepicError as exc:
                message = _problem(exc)
            except Exception:
                log.exception("the app's %s handler failed", handler.__name__)
                message = UNEXPECTED
            return failed(message, *inputs)

        return run

    return wrap


def _path(value: Any) -> str | None:
    """The file path (or data URL) of a raw gradio file value: a ``FileData`` dict, or a path as is."""
    if isinstance(value, dict):
        return value.get("path") or value.get("url")
    return None if value is None else str(getattr(value, "path", value))


def read_photo(value: Any, limits: ImageLimits, what: str = "photo") -> Image.Image | None:
    """The uploaded photo decoded, once its bytes and its width x height (read from the header) are within
    ``limits`` and its shape suits the model; ``None`` when there is none."""
    where = _path(value)
    if not where:
        return None
    if where.startswith("data:"):
        image = decode_data_url(where, limits)
    else:
        path = Path(where)
        if path.stat().st_size > limits.max_bytes:
            raise ServiceError(413, f"the {what} is larger than the limit of {limits.max_bytes:,} bytes; "
                                    "send a smaller file")
        image = decode_image(path.read_bytes(), limits, what=what)
    try:
        ImageOps.exif_transpose(image, in_place=True)  # upright, as the browser shows it
    except Exception:  # a damaged orientation tag: keep the pixels as stored
        pass
    return check_image(image, what=f"the {what}")


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


def _listed(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def build_app(service: CaptionService, *, allow_model_loading: bool = False, demo_run: Path | None = None) -> gr.Blocks:
    """The app's ``gr.Blocks`` over ``service``; the Model tab loads other models only with ``allow_model_loading``
    (offering the shipped models and the runs of the demo folder ``demo_run``, default ``./repic-demo``)."""
    store = service.store
    limits = service.settings.images
    raw = {"preprocess": False}  # see the module docstring

    def tags() -> list[str]:
        return [concept.tag for concept in store.database()]

    def concept_gallery() -> list[tuple[str, str]]:
        # Shown only when inside the database's folders and an image, as the API serves them: an
        # imported database may name any file of the machine.
        shown = [(store.servable(c.images[0]) if c.images else None, c) for c in store.database()]
        return [(str(path), f"{c.tag} · {c.category}: {c.info}") for path, c in shown if path is not None]

    def dropdown(choices: list[str], now: Any, *, multiselect: bool = False) -> Any:
        """The choices refreshed; the value too when it held a concept that is gone (else left as the user has it)."""
        held = _listed(now)
        kept = [tag for tag in held if tag in choices]
        if kept == held:
            return gr.update(choices=choices)
        return gr.update(choices=choices, value=kept if multiselect else (kept[0] if kept else None))

    def gone(*selections: Any) -> list[str]:
        database = store.database()
        return [tag for value in selections for tag in _listed(value) if tag not in database]

    def selections(picked_now: Any, asked_now: Any) -> tuple[Any, Any]:
        choices = tags()
        return dropdown(choices, picked_now, multiselect=True), dropdown(choices, asked_now)

    def refreshed(message: str | None, picked_now: Any = None, asked_now: Any = None, chosen_now: Any = None):
        """The concept lists as the database holds them now: message, gallery and the three dropdowns."""
        text = gr.update() if message is None else message
        try:
            choices = tags()
            return (text, concept_gallery(), dropdown(choices, picked_now, multiselect=True),
                    dropdown(choices, asked_now), dropdown(choices, chosen_now))
        except Exception as exc:  # the database file itself is unreadable now: say so, change nothing
            if not isinstance(exc, RepicError):
                log.exception("reading the concept database failed")
            note = _problem(exc) if isinstance(exc, RepicError) else UNEXPECTED
            return (note, gr.update(), gr.update(), gr.update(), gr.update())

    def gone_message(tags_gone: list[str]) -> str:
        return (f"**{_e(', '.join(tags_gone))} {'is' if len(tags_gone) == 1 else 'are'} no longer in the concept "
                "database** (removed meanwhile); taken off the lists.")

    with gr.Blocks(title="repic: personal captions") as app:
        gr.Markdown("# repic: captions that know your concepts\nAdd your concepts (a few photos, a name), "
                    "then drop a new photo: the caption names the ones it shows.")
        with gr.Tab("Caption", id="caption-tab"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(type="filepath", image_mode=None, label="Photo", sources=["upload", "clipboard"],
                                     elem_id="photo")
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
            served = service.model_info()
            model_info = gr.Markdown(f"Serving **{_e(served['source'])}** ({_e(served['mode'])})", elem_id="model-info")
            if allow_model_loading:
                current = str(served["source"])
                model_path = gr.Dropdown(choices=list(dict.fromkeys([current, *known_models(demo_run)])), value=current,
                                         allow_custom_value=True, elem_id="model-path",
                                         label="Model: the shipped base, a demo run, or any model folder, hub id or "
                                               "LoRA adapter folder")
                base_path = gr.Textbox(label="Base model (for an adapter, if its config names none)",
                                       elem_id="base-path")
                load = gr.Button("Load model", elem_id="load-button")
            max_tokens = gr.Slider(8, service.settings.max_new_tokens_limit, value=service.settings.max_new_tokens,
                                   step=8, label="Max new tokens", elem_id="max-tokens")
            sample = gr.Checkbox(label="Sample (instead of greedy, the paper's evaluation)", elem_id="sample")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Temperature (sampling)")

        # ---------------------------------------------------------------------------------- handlers
        @answering(lambda message, *_: (None, message, [], gr.update(), gr.update()))
        def do_caption(image, how, k, hand, text, tokens, sampling, temp, asked_now):
            picked_list, asked_list = selections(hand, asked_now)
            stale = gone(hand) if how == PICK else []
            if stale:
                return None, gone_message(stale), [], picked_list, asked_list
            photo_image = read_photo(image, limits)
            if photo_image is None:
                return None, "**Drop a photo first.**", [], picked_list, asked_list
            if text:
                check_text(text, what="the question")
            settings = service.generation(int(tokens), sample=bool(sampling), temperature=float(temp))
            hand_tags = [tag for tag in _listed(hand) if tag in store.database()]
            result = service.caption(photo_image, mode="given" if how == PICK else "retrieve", concepts=hand_tags,
                                     question=text or None, top_k=int(k), generation=settings)
            database = store.database()
            display = {c.tag: c.name for c in database}
            retrieved = {r["tag"]: r for r in result["retrieved"]}
            references = []
            for tag in result["concepts_shown"]:
                score = retrieved.get(tag, {}).get("score")
                label = tag if score is None else f"{tag} {score:.2f}"  # the cosine similarity retrieval found
                if tag in database:  # the reference image retrieval matched (the first one when given by hand)
                    images = database.get(tag).images
                    number = retrieved.get(tag, {}).get("reference", 1)
                    path = store.servable(images[number - 1]) if 1 <= number <= len(images) else None
                    if path is not None:
                        references.append((str(path), label))
            names = ", ".join(result["names"]) or "none"
            info = (f"Names in the caption: **{_e(names)}** · shown: {_e(', '.join(result['concepts_shown']))} · "
                    f"{result['timings']['total_s']:.2f} s")
            return highlighted(result["caption"], result["names"], display), info, references, picked_list, asked_list

        def ask(image, tag, picked_now) -> tuple[Image.Image | None, str | None, Any, Any]:
            """The photo and the concept to ask about, or a message; the refreshed Caption-tab lists."""
            picked_list, asked_list = selections(picked_now, tag)
            if tag and gone(tag):
                return None, gone_message([tag]), picked_list, asked_list
            photo_image = read_photo(image, limits)
            if photo_image is None or not tag:
                return None, "**Drop a photo and choose a concept first.**", picked_list, asked_list
            return photo_image, None, picked_list, asked_list

        @answering(lambda message, *_: (message, gr.update(), gr.update()))
        def do_recognize(image, tag, picked_now):
            photo_image, message, *lists_now = ask(image, tag, picked_now)
            if message:
                return message, *lists_now
            result = service.recognize(photo_image, tag)
            verdict = {True: "yes", False: "no", None: "no clear answer"}[result["present"]]
            return (f"Is {_e(result['concept'])} in the photo? **{verdict}** "
                    f"(the model said: {_e(repr(result['raw']))})", *lists_now)

        @answering(lambda message, *_: (message, None, gr.update(), gr.update()))
        def do_locate(image, tag, picked_now):
            photo_image, message, *lists_now = ask(image, tag, picked_now)
            if message:
                return message, None, *lists_now
            result = service.locate(photo_image, tag)
            if result["box"] is None:
                return f"No box in the answer (the model said: {_e(repr(result['raw']))})", None, *lists_now
            drawn = photo_image.copy()
            ImageDraw.Draw(drawn).rectangle(result["box"], outline=(255, 0, 0), width=max(1, drawn.width // 80))
            return f"{_e(result['concept'])} at {result['box']}", drawn, *lists_now

        def read_uploads(files) -> list[Image.Image]:
            images = []
            for number, file in enumerate(files or [], start=1):
                path = Path(_path(file) or "")
                what = f"upload {number} ({path.name})"
                if path.stat().st_size > limits.max_bytes:
                    raise ServiceError(413, f"the {what} is larger than the limit of {limits.max_bytes:,} bytes; "
                                            "send a smaller file")
                images.append(check_image(decode_image(path.read_bytes(), limits, what=what), what=f"the {what}"))
            return images

        # The form keeps what was typed when something fails, so it can be corrected.
        @answering(lambda message, files, name, category, info, *now: (*refreshed(message, *now), *[gr.update()] * 4))
        def do_add(files, name, category, info, picked_now, asked_now, chosen_now):
            if not (name or "").strip():
                raise RepicError("give the concept a name, e.g. 'bo' (written <bo> in captions)")
            images = read_uploads(files)
            if not images:
                raise RepicError("upload at least one reference image of the concept")
            concept = store.add(name, category=category or "", images=images, info=info or "")
            added = f"Added **{_e(concept.tag)}** ({_e(concept.category)}) with {len(concept.images)} image(s)."
            return (*refreshed(added, picked_now, asked_now, chosen_now), None, "", "", "")

        @answering(lambda message, tag, *now: (*refreshed(message, *now), *[gr.update()] * 3))
        def do_pick(tag, picked_now, asked_now, chosen_now):
            if not tag:
                return (*[gr.update()] * 5, "", "", "")
            if gone(tag):  # removed by someone else since this page listed it
                return (*refreshed(gone_message([tag]), picked_now, asked_now, chosen_now), "", "", "")
            concept = store.get(tag)
            return (*[gr.update()] * 5, concept.name, concept.category, concept.info)

        @answering(lambda message, tag, name, category, info, files, *now: (*refreshed(message, *now),
                                                                             *[gr.update()] * 4))
        def do_save(tag, name, category, info, files, picked_now, asked_now, chosen_now):
            now = (picked_now, asked_now, chosen_now)
            if not tag:
                return (*refreshed("**Choose a concept to edit first.**", *now), *[gr.update()] * 4)
            if gone(tag):
                return (*refreshed(gone_message([tag]), *now), "", "", "", None)
            images = read_uploads(files) or None
            concept = store.update(tag, name=name, category=category, info=info, images=images)
            saved = f"Saved **{_e(concept.tag)}** ({len(concept.images)} reference image(s))."
            return (*refreshed(saved, *now), *[gr.update()] * 3, None)

        @answering(lambda message, tag, confirmed, *now: (*refreshed(message, *now), False, *[gr.update()] * 4))
        def do_remove(tag, confirmed, picked_now, asked_now, chosen_now):
            now = (picked_now, asked_now, chosen_now)
            if not tag:
                return (*refreshed("**Choose a concept to remove first.**", *now), confirmed, *[gr.update()] * 4)
            if not confirmed:
                return (*refreshed(f"Tick **Yes, remove this concept** to remove {_e(tag)}.", *now), False,
                        *[gr.update()] * 4)
            removed = store.remove(tag)
            # The removed tag leaves every list it was chosen in (refreshed drops what the database lacks).
            return (*refreshed(f"Removed **{_e(removed.tag)}**.", *now), False, "", "", "", None)

        @answering(lambda message, *now: refreshed(message, *now))
        def do_refresh(picked_now, asked_now, chosen_now):
            return refreshed(None, picked_now, asked_now, chosen_now)

        now = [picked, asked, chosen]
        lists = [concept_message, gallery, picked, asked, chosen]
        edits = [edit_name, edit_category, edit_info]
        app.load(do_refresh, now, lists, **raw)  # a page opened later shows the concepts as they are then
        run.click(do_caption, [photo, mode, top_k, picked, question, max_tokens, sample, temperature, asked],
                  [caption, found, shown, picked, asked], **raw)
        recognize.click(do_recognize, [photo, asked, picked], [answer, picked, asked], **raw)
        locate.click(do_locate, [photo, asked, picked], [answer, boxed, picked, asked], **raw)
        form = [new_images, new_name, new_category, new_info]
        add.click(do_add, [*form, *now], [*lists, *form], **raw)
        chosen.change(do_pick, [chosen, *now], [*lists, *edits], **raw)  # also when a refresh clears it
        save.click(do_save, [chosen, *edits, edit_images, *now], [*lists, *edits, edit_images], **raw)
        remove.click(do_remove, [chosen, sure, *now], [*lists, sure, *edits, edit_images], **raw)
        if allow_model_loading:
            @answering(lambda message, *_: message)
            def do_load(path, base):
                if not (path or "").strip():
                    return "**Give a model folder or hub id.**"
                info = service.load_model(path.strip(), base=(base or "").strip() or None)
                return f"Serving **{_e(info['source'])}** ({_e(info['mode'])})"

            load.click(do_load, [model_path, base_path], [model_info], **raw)
    return app
