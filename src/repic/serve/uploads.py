"""Images that arrive over the network: decoded and checked before anything else sees them.

``decode_image(data, limits)`` turns uploaded bytes into an RGB ``PIL.Image`` or raises ``ServiceError``
with the HTTP status and a message that says what to fix. What it chose and why:

- **The type is checked by decoding**, never by the file name or the declared content type: a file that
  Pillow cannot open is refused (415), whatever it calls itself.
- **Sizes are checked before pixels are decoded**: the byte count first (413), then the width x height
  from the header (413), so a small file that would expand to gigapixels (a decompression bomb) is
  refused before it costs memory.
- **Data URLs** (``data:image/png;base64,...``) are how OpenAI-compatible clients send images; anything
  else (``http://...``) is refused: the server fetches no URL.
- **Server-side paths** are confined to one allowed root: the path is resolved (``..`` and symlinks
  followed) and must stay inside it (403 otherwise); without a root, paths are refused altogether.
  Messages name the path the client gave, never the server's own folders.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import RepicError

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "MPO"})


class ServiceError(RepicError):
    """A request the service refuses: an HTTP status and a message saying what to fix."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds, for a 503: sent as the Retry-After header


@dataclass(frozen=True)
class ImageLimits:
    """How large an uploaded image may be, in bytes and in decoded pixels."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 25_000_000


DEFAULT_LIMITS = ImageLimits()

def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, what: str = "image") -> Image.Image:
    """``data`` decoded to an RGB image, or ``ServiceError`` (413 too large, 415 not an image)."""
    if not data:
        raise ServiceError(400, f"the {what} is empty; send the bytes of a PNG or JPEG file")
    if len(data) > limits.max_bytes:
        raise ServiceError(
            413, f"the {what} is larger than the limit of {limits.max_bytes:,} bytes; "
            "send a smaller file (or start the server with a larger --max-upload-mb)"
        )
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # Pillow's own ceiling, checked from the header like ours below
        raise ServiceError(
            413, f"the {what} has more pixels than the limit of {limits.max_pixels:,}; send a smaller image"
        ) from None
    except Exception:  # Pillow reports unknown formats as UnidentifiedImageError, broken ones otherwise
        raise ServiceError(415, f"the {what} does not decode as an image; send a PNG, JPEG or WebP file") from None
    if image.format not in ALLOWED_FORMATS:
        raise ServiceError(415, f"the {what} is {image.format}, which is not accepted; send a PNG, JPEG or WebP file")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ServiceError(
            413, f"the {what} is {width} x {height} pixels, more than the limit of {limits.max_pixels:,}; "
            "send a smaller image"
        )
    try:
        return image.convert("RGB")
    except Exception as exc:
        raise ServiceError(415, f"the {what} is damaged and does not decode ({type(exc).__name__}); send it again") from None


def decode_data_url(url: str, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """The image of a ``data:image/...;base64,`` URL; other URLs are refused (the server fetches nothing)."""
    if not url.startswith("data:"):
        raise ServiceError(
            400, "image URLs are not fetched; send the image inline as a data URL "
            "('data:image/png;base64,...')"
        )
    header, _, payload = url.partition(",")
    if not header.endswith(";base64") or not payload:
        raise ServiceError(400, "an image data URL must be base64: 'data:image/png;base64,<bytes>'")
    if len(payload) > limits.max_bytes * 4 // 3 + 4:
        raise ServiceError(413, f"the image is larger than the limit of {limits.max_bytes:,} bytes; send a smaller one")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(400, "the image data URL is not valid base64; encode the file's bytes with base64") from None
    return decode_image(data, limits)


def confined_path(path: str, root: Path | None) -> Path:
    """``path`` (relative to ``root`` or absolute) resolved, when it stays inside ``root``; 403 otherwise."""
    if root is None:
        raise ServiceError(
            403, "server-side paths are off on this server; upload the image instead "
            "(or start the server with --allowed-root DIR)"
        )
    if not path or "\x00" in path or len(path) > 4096:
        raise ServiceError(400, "the path is empty, too long or holds a NUL byte; give a file path relative to the "
                                "allowed root")
    base = root.resolve()
    candidate = Path(path)  # no "~": a client names files under the root, not in the server's home
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise ServiceError(403, f"the path {path!r} leads outside the allowed root; give a path inside it")
    if not resolved.is_file():
        raise ServiceError(404, f"no file {path!r} under the allowed root; check the path")
    return resolved


def inside_roots(path: Path, roots: list[Path]) -> Path | None:
    """``path`` resolved (symlinks followed) when it is inside one of ``roots``, else ``None``."""
    try:
        resolved = path.resolve()
    except (OSError, ValueError):  # a loop of links, a NUL byte
        return None
    return resolved if any(resolved.is_relative_to(root.resolve()) for root in roots) else None


def read_path_image(path: str, root: Path | None, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """The image at a server-side ``path`` inside ``root``, checked like an upload."""
    resolved = confined_path(path, root)
    if resolved.stat().st_size > limits.max_bytes:
        raise ServiceError(413, f"{path!r} is larger than the limit of {limits.max_bytes:,} bytes")
    return decode_image(resolved.read_bytes(), limits, what=f"file {path!r}")
