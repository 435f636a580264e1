"""Images on the Gemini wire: chat `image_url` parts -> Gemini parts.

A `data:` URL becomes `inlineData`. A URL Gemini fetches itself becomes `fileData` with the
MIME type read from its extension (`.png .jpg .jpeg .webp .heic .heif .gif`): public and signed
`https://` URLs (accepted by the Gemini API since Google's 2026-01-12 update, "Increased file
size limits and expanded inputs support"), `gs://` (Vertex AI); Files API and YouTube URIs may
go without a type. Any other URL (`http://`, no known extension, another scheme) is refused with
a `RequestError` that says what to send instead — never dropped.

What an image costs in tokens is not counted here: the gemini provider profile's image rule
(`tokens.gemini_image_tokens`, Google's 258 tokens per 768 px tile) does it for every estimate.
"""

from __future__ import annotations

from typing import Any

from kimi_mcp.errors import RequestError

_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
         "heic": "image/heic", "heif": "image/heif", "gif": "image/gif"}
_NO_MIME_NEEDED = ("https://generativelanguage.googleapis.com/", "https://www.youtube.com/",
                   "https://youtu.be/")


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
