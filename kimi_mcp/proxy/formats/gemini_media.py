"""Images on the Gemini wire: chat `image_url` parts -> Gemini parts, and what they cost in tokens.

A `data:` URL becomes `inlineData`. A URL Gemini fetches itself becomes `fileData` with the
MIME type read from its extension (`.png .jpg .jpeg .webp .heic .heif .gif`): public and signed
`https://` URLs (accepted by the Gemini API since Google's 2026-01-12 update, "Increased file
size limits and expanded inputs support"), `gs://` (Vertex AI); Files API and YouTube URIs may
go without a type. Any other URL (`http://`, no known extension, another scheme) is refused with
a `RequestError` that says what to send instead — never dropped.

Tokens follow Google's published rule (ai.google.dev/gemini-api/docs/tokens#multimodal-tokens):
an image with both sides at most 384 px is 258 tokens; a larger one is tiled into 768x768
tiles of 258 tokens each. The size is read from the image's header (PNG, JPEG, GIF, WebP); an
image whose size is unknown (a URL, another format) counts as one tile.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

from kimi_mcp.errors import RequestError

TOKENS_PER_TILE = 258
SMALL_SIDE = 384
TILE_SIDE = 768
_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
         "heic": "image/heic", "heif": "image/heif", "gif": "image/gif"}
_NO_MIME_NEEDED = ("https://generativelanguage.googleapis.com/", "https://www.youtube.com/",
                   "https://youtu.be/")


def gemini_image_tokens(width: int | None, height: int | None) -> int:
    """Prompt tokens of one image on Gemini (see the module docstring)."""
    if not width or not height or (width <= SMALL_SIDE and height <= SMALL_SIDE):
        return TOKENS_PER_TILE
    return math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE) * TOKENS_PER_TILE


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, GIF, WebP or JPEG; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


def _decoded_head(b64: str) -> bytes:
    """The first bytes of a base64 payload (enough for any header we read)."""
    head = b64[:65_536]
    head = head[: len(head) - len(head) % 4]
    try:
        return base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return b""


def data_url_tokens(url: str) -> int:
    """Gemini prompt tokens of a `data:` URL image (one tile when its size cannot be read)."""
    _, _, data = url.partition(";base64,")
    size = image_size(_decoded_head(data)) if data else None
    return gemini_image_tokens(*(size or (None, None)))


def image_part(url: Any, where: str) -> dict[str, Any]:
    """The Gemini part of one chat image URL; `RequestError` (naming `where`) when it has none."""
    if not isinstance(url, str) or not url:
        raise RequestError(f"{where}.image_url.url must be a non-empty string")
    if url.startswith("data:"):
        mime, found, data = url[5:].partition(";base64,")
        if not found or not mime or not data:
            raise RequestError(f"{where}: a data: URL for Gemini must be 'data:<mime>;base64,<data>'")
        return {"inlineData": {"mimeType": mime, "data": data}}
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("https", "gs"):
        raise RequestError(f"{where}: Gemini cannot read a '{scheme}:' image URL; send the image "
                           f"as a data: URL (data:image/png;base64,...) or an https:// URL")
    path = url.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    known = _MIME.get(name.rpartition(".")[2].lower()) if "." in name else None
    if known:
        return {"fileData": {"mimeType": known, "fileUri": url}}
    if url.startswith(_NO_MIME_NEEDED):
        return {"fileData": {"fileUri": url}}
    raise RequestError(
        f"{where}: Gemini needs the type of an image it fetches, and '{path[:120]}' does not end "
        f"in one of .{', .'.join(sorted(_MIME))}; send the image as a data: URL "
        f"(data:image/png;base64,...) or a URL with the image's extension")


def body_image_tokens(body: dict[str, Any]) -> int:
    """Gemini prompt tokens of every image part in a chat request's messages."""
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith("data:"):
                total += data_url_tokens(url)
            else:
                total += TOKENS_PER_TILE
    return total
