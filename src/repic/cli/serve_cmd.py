"""``repic serve`` (the HTTP API) and ``repic app`` (the gradio app): one captioning service, two fronts.

Both load the model once and open the concept database (defaults: ``repic.serve.defaults``: the demo
run's RePIC model, else the tiny RePIC model shipped with repic; ``repic-concepts/database.json``, made
from the demo's or the shipped concepts), check that the port is free, print where they listen, and run
until Ctrl-C. FastAPI / uvicorn and gradio are optional extras; a missing one is named with the install
command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import RepicError
from .console import say
from .options import DatabaseImageRootOpt, PortOpt

ModelArg = Annotated[
    str | None,
    typer.Argument(help="Model folder, hub id or LoRA adapter folder (default: the latest repic demo's RePIC "
                        "model, else the shipped tiny base).", show_default=False),
]
DatabaseOpt = Annotated[
    Path | None,
    typer.Option("--database", help="The concept database.json to serve and edit (default: "
                                    "repic-concepts/database.json, created from the demo's or the shipped concepts)."),
]
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")]
BaseOpt = Annotated[Path | None, typer.Option("--base", help="The base model of a LoRA adapter folder.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if any), cpu or cuda.")]
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", help="New tokens per answer unless a request says.")]
EmbedderOpt = Annotated[str | None, typer.Option(
    "--embedder", help="Retrieval embedder: 'builtin' (offline colour embedder), 'tower:MODEL_DIR' (a Qwen-VL-family "
                       "model's own vision tokens) or a CLIP / SigLIP hub id or folder (default: the shipped tiny "
                       "base's tower for the built-in concepts, else builtin).", show_default=False)]
RunOpt = Annotated[Path | None, typer.Option(
    "--run", help="A `repic demo` run folder to take the default model and concepts from (default: ./repic-demo).",
    show_default=False)]


def _needs(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RepicError(f"this command needs {module}, which is not installed; pip install 'repic[{extra}]'")


def _service(model, database, base, settings, embedder, image_root, run):
    from ..serve.defaults import default_database, default_embedder, default_model
    from ..serve.service import CaptionService

    chosen_model = default_model(run) if model is None else None
    chosen_db = default_database(run=run) if database is None else None
    model_path = str(chosen_model.path) if chosen_model else model
    db_path = chosen_db.path if chosen_db else database
    if embedder is None:
        embedder = default_embedder() if chosen_db else "builtin"
    say(f"model: {model_path}" + (f" ({chosen_model.origin})" if chosen_model else ""))
    say(f"concepts: {db_path}" + (f" ({chosen_db.origin})" if chosen_db else ""))
    service = CaptionService(model_path, db_path, base=base, settings=settings, embedder=embedder,
                             image_root=image_root)
    say(f"loaded {len(service.store.database())} concepts and the model ({service.model_info()['mode']}; "
        f"retrieval: {embedder.split(':')[0]})")
    return service


def _check_port(host: str, port: int) -> None:
    """Refuse a port this process cannot listen on before minutes of model loading, not after."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RepicError(f"--host {host} is not an address this machine knows ({exc.strerror}); use e.g. "
                         "127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise RepicError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}; choose another "
                             "--port (or stop what uses it)") from None


def _access_log() -> None:
    """One line per request on stderr (``repic.serve.guard``), like a web server's access log."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    access = logging.getLogger("repic.serve.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def serve_command(
    model: ModelArg = None,
    database: DatabaseOpt = None,
    database_image_root: DatabaseImageRootOpt = None,
    run: RunOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="REPIC_API_KEY", help="Require this key on every /v1 route (or set REPIC_API_KEY).",
        show_default=False)] = None,
    allowed_root: Annotated[Path | None, typer.Option(
        "--allowed-root", help="Folder that server-side image paths may point into (off without it).")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="A web origin (https://example.org) whose pages may call this server from a browser; "
                              "repeatable. Others may not change anything.", show_default=False)] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Most requests in one batch.")] = 16,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="How long a batch waits to fill.")] = 10.0,
    max_new_tokens: TokensOpt = 128,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest accepted image file.")] = 10.0,
    max_image_pixels: Annotated[int, typer.Option("--max-image-pixels", help="Largest accepted image.")] = 25_000_000,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body.")] = 32.0,
    max_images: Annotated[int, typer.Option("--max-images", help="Most images in one request.")] = 8,
    max_question_chars: Annotated[int, typer.Option(
        "--max-question-chars", help="Longest question or chat message text.")] = 2_000,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Most prompts waiting for a batch; beyond it, 503 with Retry-After.")] = 64,
    max_pending: Annotated[int, typer.Option(
        "--max-pending", help="Most requests in progress; beyond it, 503 with Retry-After.")] = 64,
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", help="Longest wait for an answer; the request's generation is then abandoned.")] = 300.0,
    embedder: EmbedderOpt = None,
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Serve a personalized captioning model over HTTP (FastAPI), with an OpenAI-compatible chat endpoint."""
    _needs("fastapi", "serve")
    _needs("uvicorn", "serve")
    import uvicorn

    from ..serve.api import HttpLimits, create_app, guarded, serve_path
    from ..serve.service import ServiceSettings
    from ..serve.uploads import ImageLimits

    http = HttpLimits(int(max_body_mb * 1024 * 1024), max_pending, tuple(cors_origin or ()))
    settings = ServiceSettings(
        max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_new_tokens=max_new_tokens, device=device,
        images=ImageLimits(int(max_upload_mb * 1024 * 1024), max_image_pixels), allowed_root=serve_path(allowed_root),
        max_question_chars=max_question_chars, max_images_per_request=max_images, max_queue=max_queue,
        request_timeout_s=timeout_s,
    )
    _check_port(host, port)
    service = _service(model, database, base, settings, embedder, database_image_root, run)
    app = guarded(create_app(service, api_key=api_key or None, http=http), service, http)
    _access_log()
    say(f"serving on http://{host}:{port} (docs: /docs; OpenAI base URL: http://{host}:{port}/v1)"
        + ("; API key required" if api_key else ""))
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        service.close()


def app_command(
    model: ModelArg = None,
    database: DatabaseOpt = None,
    database_image_root: DatabaseImageRootOpt = None,
    run: RunOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 7860,
    max_new_tokens: TokensOpt = 128,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest accepted image file.")] = 10.0,
    max_image_pixels: Annotated[int, typer.Option("--max-image-pixels", help="Largest accepted image.")] = 25_000_000,
    allow_model_loading: Annotated[bool, typer.Option(
        "--allow-model-loading", help="Let visitors load another model folder or hub id in the Model tab "
                                      "(off: the tab only shows the served model).")] = False,
    embedder: EmbedderOpt = None,
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Open the personal captioning app (gradio): your concepts, a photo, a caption that names them."""
    _needs("gradio", "app")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ..app.ui import build_app
    from ..serve.service import ServiceSettings
    from ..serve.uploads import ImageLimits

    limits = ImageLimits(int(max_upload_mb * 1024 * 1024), max_image_pixels)
    settings = ServiceSettings(max_new_tokens=max_new_tokens, device=device, images=limits)
    _check_port(host, port)
    service = _service(model, database, base, settings, embedder, database_image_root, run)
    say(f"app on http://{host}:{port}")
    try:
        build_app(service, allow_model_loading=allow_model_loading, demo_run=run).launch(
            server_name=host, server_port=port, show_error=False, quiet=True, max_file_size=limits.max_bytes)
    finally:
        service.close()
