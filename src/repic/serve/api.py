"""The HTTP API of ``repic serve``: FastAPI routes over one ``CaptionService``.

``create_app(service, api_key=...)`` returns the ASGI app that uvicorn runs. Routes (OpenAPI at
``/openapi.json``, interactive docs at ``/docs``):

- ``GET /healthz``: status, model, concept count, batching statistics (no key needed).
- ``/v1/concepts``: ``GET`` lists, ``POST`` creates (multipart: ``tag``, ``category``, ``info``, ``name``,
  one or more ``images``); ``/v1/concepts/{tag}``: ``GET``, ``PATCH`` (any field, or new ``images``),
  ``DELETE``; ``GET /v1/concepts/{tag}/images/{n}`` returns a reference image (1 is the first).
- ``POST /v1/caption``: an ``image`` upload or a server-side ``path`` inside ``--allowed-root``; ``mode``
  ``retrieve`` (``top_k``) or ``given`` (``concepts``: ``bo,kim``); returns the caption, the names it
  contains, the retrieved concepts with scores (and which reference image matched) and the timings.
- ``POST /v1/recognize`` (OCT, ``concept``) and ``POST /v1/locate`` (VLT, ``concept``): the same image inputs.
- ``POST /v1/chat/completions``: OpenAI's chat format with image parts as data URLs; with ``"repic": {...}``
  in the body, a personalized caption over the concept database (``repic.serve.chat``).

Errors are JSON in OpenAI's shape with the status that fits, never a traceback. An optional API key guards
every ``/v1`` route. Routes are plain functions in FastAPI's thread pool, so concurrent requests meet in one
batch. The door (``repic.serve.guard``) checks origin, load and body size before any route; no server path
leaves the server; ``/docs`` works offline.

In full: docs/notes/http-api.md
"""

from __future__ import annotations

import hmac
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RepicError
from ..inference.generate import Generated
from ..inference.inputs import check_number
from ..records import Concept
from .chat import chat_completion, chat_prompt, personalized_request, prompt_tokens
from .guard import RequestGuard
from .service import CaptionService
from .uploads import ServiceError, decode_image, read_path_image

log = logging.getLogger("repic.serve")
_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                409: "conflict_error", 413: "request_too_large", 503: "overloaded_error"}


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat-completions request that a served model uses; others are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = "repic"
    messages: list[Any]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    repic: Any = None  # personalized captions over the concept database (see ``repic.serve.chat``)


def error_response(status: int, message: str, *, retry_after: int | None = None) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)


@dataclass(frozen=True)
class HttpLimits:
    """What the HTTP door allows: body bytes, requests in progress, foreign origins that may write."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_pending: int = 64
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_pending < 1:
            raise RepicError(f"invalid HTTP limits: the body limit ({self.max_body_bytes}) and the requests in "
                             f"progress ({self.max_pending}) must be positive")
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise RepicError(f"--cors-origin {origin!r} is not an origin; give scheme and host, e.g. "
                                 "https://example.org or http://localhost:3000")


def create_app(service: CaptionService, *, api_key: str | None = None, http: HttpLimits | None = None) -> FastAPI:
    """The FastAPI app over ``service``; with ``api_key``, every ``/v1`` route requires it."""
    http = http or HttpLimits()
    app = FastAPI(title="repic", version="1", summary="Personalized image captioning (RePIC) over HTTP.",
                  docs_url=None, redoc_url=None)
    limits = service.settings.images
    hide = _path_hider(service)
    _offline_docs(app)

    def check_key(authorization: Annotated[str | None, Header()] = None,
                  x_api_key: Annotated[str | None, Header()] = None) -> None:
        if api_key is None:
            return
        given = x_api_key or (authorization[7:] if authorization and authorization.startswith("Bearer ") else None)
        if given is None:
            raise ServiceError(401, "this server needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ServiceError(401, "the API key is wrong; use the key the server was started with")

    keyed = [Depends(check_key)]

    @app.exception_handler(ServiceError)
    def _service_error(request: Request, exc: ServiceError):
        return error_response(exc.status, hide(str(exc)), retry_after=exc.retry_after)

    @app.exception_handler(RepicError)
    def _repic_error(request: Request, exc: RepicError):
        return error_response(400, hide(str(exc)))

    @app.exception_handler(RequestValidationError)
    def _validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
            problems.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
        return error_response(422, "invalid request: " + "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException):
        message = "no such route; see /docs for the API" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, message)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    def uploads(images: list[UploadFile]) -> list:
        most = service.settings.max_images_per_request
        if len(images) > most:
            raise ServiceError(400, f"{len(images)} images were uploaded, more than the limit of {most}; send fewer")
        return [_read_upload(upload, limits, f"image {n}") for n, upload in enumerate(images, start=1)]

    def query_image(image: UploadFile | None, path: str | None):
        if (image is None) == (path is None):
            raise ServiceError(400, "send exactly one of: an 'image' upload, or a server-side 'path'")
        if path is not None:
            return read_path_image(path, service.settings.allowed_root, limits)
        return _read_upload(image, limits)

    def concept_json(concept: Concept) -> dict[str, Any]:
        bare = concept.tag[1:-1]
        return {"tag": concept.tag, "name": concept.name, "category": concept.category, "info": concept.info,
                "images": [f"/v1/concepts/{bare}/images/{n}" for n in range(1, len(concept.images) + 1)]}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return service.health()

    @app.get("/v1/concepts", dependencies=keyed)
    def list_concepts() -> dict[str, Any]:
        return {"concepts": [concept_json(c) for c in service.store.database()]}

    @app.get("/v1/concepts/{tag}", dependencies=keyed)
    def get_concept(tag: str) -> dict[str, Any]:
        return concept_json(service.store.get(tag))

    @app.get("/v1/concepts/{tag}/images/{number}", dependencies=keyed)
    def concept_image(tag: str, number: int):
        allowed = [service.settings.allowed_root] if service.settings.allowed_root else []
        path, kind = service.store.reference_image(tag, number, allowed)
        return FileResponse(path, media_type=Image.MIME.get(kind, "application/octet-stream"),
                            headers={"X-Content-Type-Options": "nosniff"})

    @app.post("/v1/concepts", dependencies=keyed, status_code=201)
    def create_concept(
        tag: Annotated[str, Form()], category: Annotated[str, Form()], images: Annotated[list[UploadFile], File()],
        info: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
    ) -> dict[str, Any]:
        return concept_json(service.store.add(tag, category=category, images=uploads(images), name=name, info=info))

    @app.patch("/v1/concepts/{tag}", dependencies=keyed)
    async def update_concept(tag: str, request: Request) -> dict[str, Any]:
        # The form is read as sent: FastAPI's Form() turns an empty field into "not given", and an empty
        # name must be refused, not ignored.
        form = await request.form()
        unknown = sorted(set(form) - {"name", "category", "info", "images"})
        if unknown:
            raise ServiceError(400, f"unknown fields {unknown}; a concept has name, category, info and images")
        fields = {}
        for field in ("name", "category", "info"):
            value = form.get(field)
            if value is not None and not isinstance(value, str):
                raise ServiceError(400, f"'{field}' must be a text field, not a file")
            fields[field] = value
        files = form.getlist("images")
        if any(isinstance(item, str) for item in files):
            raise ServiceError(400, "'images' must be file uploads")
        decoded = await run_in_threadpool(uploads, files) if files else None
        updated = await run_in_threadpool(service.store.update, tag, images=decoded, **fields)
        return concept_json(updated)

    @app.delete("/v1/concepts/{tag}", dependencies=keyed)
    def delete_concept(tag: str) -> dict[str, Any]:
        return {"deleted": service.store.remove(tag).tag}

    @app.post("/v1/caption", dependencies=keyed)
    def caption(
        image: Annotated[UploadFile | None, File()] = None, path: Annotated[str | None, Form()] = None,
        mode: Annotated[str, Form()] = "retrieve", concepts: Annotated[str, Form()] = "",
        top_k: Annotated[int, Form()] = 2, question: Annotated[str | None, Form()] = None,
        max_new_tokens: Annotated[int | None, Form()] = None, sample: Annotated[bool, Form()] = False,
        temperature: Annotated[float, Form()] = 1.0, seed: Annotated[int, Form()] = 0,
    ) -> dict[str, Any]:
        service.check_question(question)
        settings = service.generation(max_new_tokens, sample=sample, temperature=temperature, seed=seed)
        tags = [tag for tag in concepts.split(",") if tag.strip()]
        if len(tags) > service.settings.max_images_per_request:
            raise ServiceError(400, f"{len(tags)} concepts were given, more than the limit of "
                                    f"{service.settings.max_images_per_request}; give fewer")
        picture = query_image(image, path)
        return service.caption(picture, mode=mode, concepts=tags, question=question, top_k=top_k, generation=settings)

    @app.post("/v1/recognize", dependencies=keyed)
    def recognize(concept: Annotated[str, Form()], image: Annotated[UploadFile | None, File()] = None,
                  path: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        return service.recognize(query_image(image, path), concept)

    @app.post("/v1/locate", dependencies=keyed)
    def locate(concept: Annotated[str, Form()], image: Annotated[UploadFile | None, File()] = None,
               path: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        return service.locate(query_image(image, path), concept)

    @app.post("/v1/chat/completions", dependencies=keyed)
    def chat_completions(request: ChatRequest) -> dict[str, Any]:
        if request.stream:
            raise ServiceError(400, "streaming is not supported by this server; send stream=false")
        if request.n != 1:
            raise ServiceError(400, f"n={request.n} is not supported; ask for one choice (n=1) per request")
        settings = service.generation(request.max_completion_tokens or request.max_tokens, **chat_sampling(request))
        prompt = chat_prompt(request.messages, limits, max_images=service.settings.max_images_per_request)
        if request.repic is not None:
            result = service.caption(**personalized_request(request.repic, prompt), generation=settings)
            generated = Generated(result["caption"], result["new_tokens"], result["finished"])
            reply = chat_completion(request.model, generated, prompt_tokens(service.policy.processor, prompt))
            reply["repic"] = {key: result[key] for key in ("names", "mode", "concepts_shown", "retrieved", "timings")}
            return reply
        answer = service.generate(prompt, settings)
        return chat_completion(request.model, answer.generated, prompt_tokens(service.policy.processor, prompt))

    return app


def chat_sampling(request: ChatRequest) -> dict[str, Any]:
    """OpenAI's sampling fields as generation settings: absent or 0 temperature is greedy; anything else
    out of range (a negative, NaN or infinite temperature, ``top_p`` 0) is refused, never replaced."""
    try:
        temperature = 0.0 if request.temperature is None else check_number(
            request.temperature, what="temperature", low=0, high=2)
        top_p = 1.0 if request.top_p is None else check_number(request.top_p, what="top_p", low=0, high=1,
                                                                low_open=True)
    except RepicError as exc:
        raise ServiceError(400, str(exc)) from None
    return {"sample": temperature > 0, "temperature": temperature if temperature > 0 else 1.0, "top_p": top_p,
            "seed": 0 if request.seed is None else request.seed}


def _path_hider(service: CaptionService) -> Callable[[str], str]:
    """A function that replaces the server's own folders in a message by what they are."""
    def named() -> list[tuple[str, str]]:
        places = [(str(Path(str(service.policy.info.source)).absolute()), "<model>")]
        places += [(str(root), "<database folder>") for root in service.store.image_roots()]
        places += [(str(root.resolve()), "<database folder>") for root in service.store.image_roots()]
        if service.settings.allowed_root is not None:
            places += [(str(service.settings.allowed_root), "<allowed root>"),
                       (str(service.settings.allowed_root.resolve()), "<allowed root>")]
        places += [(tempfile.gettempdir(), "<temp>"), (str(Path.home()), "~")]
        return sorted({p for p in places if len(p[0]) > 1}, key=lambda pair: len(pair[0]), reverse=True)

    def hide(message: str) -> str:
        for path, label in named():
            message = message.replace(path, label)
        return message

    return hide


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` from the Swagger UI files of the ``swagger-ui-bundle`` package (no CDN), when installed."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the docs page then says how to get it; the API itself is unaffected
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        if swagger_ui_path is None:
            return error_response(404, "the interactive docs need swagger-ui-bundle: pip install 'repic[serve]'; "
                                       "the schema is at /openapi.json")
        return get_swagger_ui_html(openapi_url="/openapi.json", title="repic API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


def guarded(app: FastAPI, service: CaptionService, http: HttpLimits):
    """``app`` behind the HTTP door (``repic.serve.guard``) and, for allowed foreign origins, a CORS policy."""
    from starlette.middleware.cors import CORSMiddleware

    inner = app
    if http.cors_origins:
        inner = CORSMiddleware(app, allow_origins=list(http.cors_origins), allow_methods=["*"],
                               allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    return RequestGuard(inner, max_body_bytes=http.max_body_bytes, max_pending=http.max_pending,
                        allowed_origins=http.cors_origins, retry_after=service.batcher.retry_after)


def _read_upload(upload: UploadFile, limits, what: str = "image"):
    data = upload.file.read(limits.max_bytes + 1)
    return decode_image(data, limits, what=f"{what} ({upload.filename or 'upload'})")


def serve_path(path: str | Path | None) -> Path | None:
    """An ``--allowed-root`` folder made absolute; ``RepicError`` unless it is a folder."""
    if path is None:
        return None
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        raise RepicError(f"--allowed-root {root} is not a folder; pass the folder server-side paths may be in")
    return root
