"""The OpenAI-compatible proxy: `/v1/chat/completions` and `/v1/models` over the catalog's providers.

    routes.py       the endpoints, `routes(proxy)` and `lifespan(proxy)`
    pipeline.py     `Proxy`: one call — validate, session, route, context stages, limits, upstream
    completions.py  `ProxyCompletions`: the product's own model calls through the same pipeline
    resolve.py      model resolution, aliases and strategies, circuit breakers, moving averages
    limits.py       per-provider rpm/tpm token buckets
    wire.py         the request a provider receives (format, model id, key, dropped fields)
    profiles/       one per provider: where usage lives, renamed and refused fields, history and
                    tool-call id rules, finish reasons and in-band errors, image counting
    streaming.py    SSE relay (pass-through or translated), mid-stream failures, disconnects
    gemini.py       OpenAI ⇄ Gemini generateContent translation
    accounting.py   the ledger row and context alerts, built off the critical path

The HTTP client itself is the core's `kimi_mcp.upstream.Upstream`.
"""
