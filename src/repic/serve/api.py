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

What it chose and why:

- **Errors are JSON in OpenAI's shape** (``{"error": {"message", "type", "code"}}``, which OpenAI clients
  read) with the status that fits: 400 bad input, 401 no or wrong key, 403 path outside the allowed
  root, 404 unknown concept or file, 409 duplicate tag, 413 too large, 415 not an image, 422 a missing
  or mistyped field, 503 too busy. An unexpected failure is logged with its traceback on the server and
  answered 500 with the error's type only: a response never carries a traceback.
- **An optional API key** (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``) guards every ``/v1``
  route; ``/healthz`` and the docs stay open so a load balancer and a reader can reach them.
- **Routes are plain functions**, run by FastAPI in its thread pool: they wait on the batching queue's
  futures while the event loop keeps accepting requests, which is what lets concurrent requests meet in
  one batch.
- Uploads are read up to the byte limit plus one byte, so an oversized upload is refused without
  holding it in memory.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RepicError
from ..inference.generate import Generated
from ..records import Concept
from .chat import chat_completion, chat_prompt, personalized_request, prompt_tokens
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


def error_response(status: int, message: str) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def create_app(service: CaptionService, *, api_key: str | None = None) -> FastAPI:
    """The FastAPI app over ``service``; with ``api_key``, every ``/v1`` route requires it."""
    app = FastAPI(title="repic", version="1", summary="Personalized image captioning (RePIC) over HTTP.")
    limits = service.settings.images

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
        return error_response(exc.status, str(exc))

    @app.exception_handler(RepicError)
    def _repic_error(request: Request, exc: RepicError):
        return error_response(400, str(exc))

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
        images = service.store.get(tag).images
        if not 1 <= number <= len(images):
            raise ServiceError(404, f"{tag} has {len(images)} reference image(s); ask for 1 to {len(images)}")
        return FileResponse(images[number - 1])

    @app.post("/v1/concepts", dependencies=keyed, status_code=201)
    def create_concept(
        tag: Annotated[str, Form()], category: Annotated[str, Form()], images: Annotated[list[UploadFile], File()],
        info: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
    ) -> dict[str, Any]:
        decoded = [_read_upload(upload, limits, f"image {n}") for n, upload in enumerate(images, start=1)]
        return concept_json(service.store.add(tag, category=category, images=decoded, name=name, info=info))

    @app.patch("/v1/concepts/{tag}", dependencies=keyed)
    def update_concept(
        tag: str, name: Annotated[str | None, Form()] = None, category: Annotated[str | None, Form()] = None,
        info: Annotated[str | None, Form()] = None, images: Annotated[list[UploadFile] | None, File()] = None,
    ) -> dict[str, Any]:
        decoded = None if not images else [_read_upload(u, limits, f"image {n}") for n, u in enumerate(images, 1)]
        return concept_json(service.store.update(tag, name=name, category=category, info=info, images=decoded))

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
        picture = query_image(image, path)
        settings = service.generation(max_new_tokens, sample=sample, temperature=temperature, seed=seed)
        tags = [tag for tag in concepts.split(",") if tag.strip()]
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
        prompt = chat_prompt(request.messages, limits)
        temperature = request.temperature or 0.0
        settings = service.generation(
            request.max_completion_tokens or request.max_tokens, sample=temperature > 0,
            temperature=temperature if temperature > 0 else 1.0, top_p=request.top_p or 1.0, seed=request.seed or 0,
        )
        if request.repic is not None:
            result = service.caption(**personalized_request(request.repic, prompt), generation=settings)
            generated = Generated(result["caption"], result["new_tokens"], result["finished"])
            reply = chat_completion(request.model, generated, prompt_tokens(service.policy.processor, prompt))
            reply["repic"] = {key: result[key] for key in ("names", "mode", "concepts_shown", "retrieved", "timings")}
            return reply
        answer = service.generate(prompt, settings)
        return chat_completion(request.model, answer.generated, prompt_tokens(service.policy.processor, prompt))

    return app


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
