"""The OpenAI-compatible proxy: `/v1/chat/completions` and `/v1/models` over the catalog's providers.

    routes.py      the endpoints, `routes(rt)` and `lifespan(rt)`
    pipeline.py    one call: validate, session, route, context stages, limits, upstream, answer
    resolve.py     model resolution, aliases and strategies, circuit breakers, moving averages
    limits.py      per-provider rpm/tpm token buckets
    upstream.py    the request a provider receives, retries before the first byte, error mapping
    transport.py   the lean HTTP/1.1 transport under the shared httpx client
    streaming.py   SSE relay (pass-through or translated), mid-stream failures, disconnects
    gemini.py      OpenAI ⇄ Gemini generateContent translation
    accounting.py  the ledger row and context alerts, built off the critical path
"""
