"""``repic serve`` (the HTTP API) and ``repic app`` (the gradio app): one captioning service, two fronts.

Both load the model once and open the concept database (defaults: ``repic.serve.defaults``: the latest
``repic demo`` RePIC model, else the shipped tiny base; ``repic-concepts/database.json``, made from the
demo's or the shipped concepts), print where they listen, and run until Ctrl-C. FastAPI / uvicorn and
gradio are optional extras; a missing one is named with the install command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import RepicError
from .console import say
from .options import DatabaseImageRootOpt

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
EmbedderOpt = Annotated[str, typer.Option(
    "--embedder", help="Retrieval embedder: 'builtin' (offline colour embedder), 'tower:MODEL_DIR' (a Qwen-VL-family "
                       "model's own vision tokens) or a CLIP / SigLIP hub id or folder.")]


def _needs(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RepicError(f"this command needs {module}, which is not installed; pip install 'repic[{extra}]'")


def _service(model, database, base, settings, embedder, image_root):
    from ..serve.defaults import default_database, default_model
    from ..serve.service import CaptionService

    chosen_model = default_model() if model is None else None
    chosen_db = default_database() if database is None else None
    model_path = str(chosen_model.path) if chosen_model else model
    db_path = chosen_db.path if chosen_db else database
    say(f"model: {model_path}" + (f" ({chosen_model.origin})" if chosen_model else ""))
    say(f"concepts: {db_path}" + (f" ({chosen_db.origin})" if chosen_db else ""))
    service = CaptionService(model_path, db_path, base=base, settings=settings, embedder=embedder,
                             image_root=image_root)
    say(f"loaded {len(service.store.database())} concepts and the model ({service.model_info()['mode']})")
    return service


def serve_command(
    model: ModelArg = None,
    database: DatabaseOpt = None,
    database_image_root: DatabaseImageRootOpt = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="REPIC_API_KEY", help="Require this key on every /v1 route (or set REPIC_API_KEY).",
        show_default=False)] = None,
    allowed_root: Annotated[Path | None, typer.Option(
        "--allowed-root", help="Folder that server-side image paths may point into (off without it).")] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Most requests answered in one batch.")] = 16,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="How long a batch waits to fill.")] = 10.0,
    max_new_tokens: TokensOpt = 128,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest accepted upload.")] = 10.0,
    max_image_pixels: Annotated[int, typer.Option("--max-image-pixels", help="Largest accepted image.")] = 25_000_000,
    embedder: EmbedderOpt = "builtin",
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Serve a personalized captioning model over HTTP (FastAPI), with an OpenAI-compatible chat endpoint."""
    _needs("fastapi", "serve")
    _needs("uvicorn", "serve")
    import uvicorn

    from ..serve.api import create_app, serve_path
    from ..serve.service import ServiceSettings
    from ..serve.uploads import ImageLimits

    settings = ServiceSettings(
        max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_new_tokens=max_new_tokens, device=device,
        images=ImageLimits(int(max_upload_mb * 1024 * 1024), max_image_pixels), allowed_root=serve_path(allowed_root),
    )
    service = _service(model, database, base, settings, embedder, database_image_root)
    say(f"serving on http://{host}:{port} (docs: /docs; OpenAI base URL: http://{host}:{port}/v1)"
         + ("; API key required" if api_key else ""))
    try:
        uvicorn.run(create_app(service, api_key=api_key or None), host=host, port=port, log_level="warning")
    finally:
        service.close()


def app_command(
    model: ModelArg = None,
    database: DatabaseOpt = None,
    database_image_root: DatabaseImageRootOpt = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 7860,
    max_new_tokens: TokensOpt = 64,
    embedder: EmbedderOpt = "builtin",
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Open the personal captioning app (gradio): your concepts, a photo, a caption that names them."""
    _needs("gradio", "app")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ..app.ui import build_app
    from ..serve.service import ServiceSettings

    settings = ServiceSettings(max_new_tokens=max_new_tokens, device=device)
    service = _service(model, database, base, settings, embedder, database_image_root)
    say(f"app on http://{host}:{port}")
    try:
        build_app(service).launch(server_name=host, server_port=port, show_error=False, quiet=True)
    finally:
        service.close()
