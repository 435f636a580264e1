"""Format adapters: every client format in, every provider format out, over one canonical request.

    canonical.py          the canonical request/answer (OpenAI chat shape), extension keys, usage maps
    inbound.py            the inbound adapters: openai_chat (identity), anthropic_messages,
                          openai_responses — parse, answer, stream encoder, error shape, session id
    openai_chat.py        chat's stream encoder; the OpenAI-format outbound body and stream reader
    anthropic_request.py  Messages request <-> canonical (lossless when nothing changed)
    anthropic_answer.py   Messages answer <-> chat.completion; Anthropic's error shape
    anthropic_stream.py   canonical chunks <-> Messages events
    responses_request.py  Responses request -> canonical; kept responses for previous_response_id
    responses_answer.py   chat.completion -> Responses `response` object; error object
    responses_stream.py   canonical chunks -> Responses events
    gemini.py             canonical <-> Gemini generateContent (request, answer, stream),
                          thought signatures, finish and block reasons
    gemini_schema.py      JSON Schema -> Gemini's OpenAPI-subset Schema (tool parameters)
    gemini_media.py       image parts -> inlineData / fileData; Gemini's image token rule
"""
