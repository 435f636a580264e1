"""Memory benchmark: embedder speed, recall@1 on paraphrases, store throughput, and recall
latency (query embedding included) at 1k, 10k and 100k memories.

    python bench/bench_memory.py            # all levels (about 3-4 minutes on 2 cores)
    python bench/bench_memory.py --max 10000

The real embedder runs at ~140 sentences/s here, so 100k memories cannot all be embedded
in a few minutes: 2,000 template sentences are embedded for real and the rest are their
perturbations (vector + Gaussian noise, renormalised; cosine ≈ 0.9 to their source), stored
as real records with their vector rows in the ledger. Query vectors are always computed by the
real model. Searches go to the embedded default `VectorSearch` (the in-process index).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from memory_paraphrases import ACTIONS, PAIRS, TOPICS, corpus
from sqlalchemy import insert

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Ledger, Tx
from kimi_mcp.ledger.models import MemoryRecord, MemoryVector
from kimi_mcp.memory import vecrows
from kimi_mcp.memory.embedder import HashEmbedder, MiniLMEmbedder, normalize
from kimi_mcp.memory.engine import MemoryEngine

BASE = 2000


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, value: str) -> None:
    print(f"  {label:<46} {value}", flush=True)


def bench_embedder(embedder: MiniLMEmbedder) -> np.ndarray:
    print("embedder (all-MiniLM-L6-v2 int8, onnxruntime, 1 thread)")
    t = time.perf_counter()
    embedder.load()
    line("load + sha256 check", f"{(time.perf_counter() - t) * 1000:.0f} ms")
    texts = corpus(BASE)
    t = time.perf_counter()
    for text in texts[:200]:
        embedder.embed([text])
    line("one sentence per call", f"{200 / (time.perf_counter() - t):.0f} sentences/s")
    t = time.perf_counter()
    base = embedder.embed(texts)
    line("batches of 32", f"{BASE / (time.perf_counter() - t):.0f} sentences/s")
    return base


def bench_paraphrases(engine: MemoryEngine, base: np.ndarray) -> None:
    print(f"recall@1 on {len(PAIRS)} paraphrase pairs (query shares almost no words)")
    ids = [engine.store_sync(m, project="para").id for m, _ in PAIRS]
    for label in ("among the 40 memories", f"among 40 + {BASE} distractors"):
        if "distractors" in label:
            _bulk(engine, "para", corpus(BASE), base)
            engine.close()
            engine.ready()
        top1 = top3 = 0
        for mid, (_, question) in zip(ids, PAIRS, strict=True):
            found = [h.item.id for h in engine.recall_sync(question, limit=3, project="para")]
            top1 += found[:1] == [mid]
            top3 += mid in found
        line(label, f"recall@1 {top1}/{len(PAIRS)} = {top1 / len(PAIRS):.0%}, "
                    f"recall@3 {top3 / len(PAIRS):.0%}")


def bench_store(engine: MemoryEngine) -> None:
    print("store throughput")
    texts = [f"{t} (stored {n})" for n, t in enumerate(corpus(300))]
    t = time.perf_counter()
    for text in texts:
        engine.store_sync(text, project="store")
    line("memory store (embed + ledger + index)", f"{len(texts) / (time.perf_counter() - t):.0f} /s")
    blocks = [f"tool output {n}\n" + ("log line with some words\n" * 150) for n in range(200)]
    t = time.perf_counter()
    for block in blocks:
        engine.store_text_sync(block, project="store")
    queued = time.perf_counter() - t
    engine.flush_vectors()
    total = time.perf_counter() - t
    line("masked block fast path (4 KB, queued)", f"{len(blocks) / queued:.0f} /s "
                                                   f"({queued / len(blocks) * 1e3:.2f} ms each)")
    line("  ... until all embedded in the background", f"{len(blocks) / total:.0f} /s")
    bench_store_path(engine)


def bench_store_path(engine: MemoryEngine) -> None:
    """The storage path alone: the hash embedder (microseconds) instead of the model, so the
    figure is what the vector search and the ledger cost per store."""
    engine.close()  # one engine at a time holds what it opens
    hashed = MemoryEngine(engine.settings, engine.ledger, HashEmbedder())
    hashed.ready()
    lat = []
    t0 = time.perf_counter()
    for n in range(1000):
        t = time.perf_counter()
        hashed.store_sync(f"storage path note {n}: service {n} listens on {n % 97}", project="path")
        lat.append((time.perf_counter() - t) * 1000)
    rate = len(lat) / (time.perf_counter() - t0)
    line("store, hash embedder (storage path alone)", f"{rate:.0f} /s, p50 / p99 "
                                                       f"{pct(lat, 50):.2f} / {pct(lat, 99):.2f} ms")
    hashed.close()
    engine.ready()


def _bulk(engine: MemoryEngine, project: str, texts: list[str], vectors: np.ndarray) -> None:
    """Insert records and vectors directly (the benchmark's loader, not an API)."""
    ids = [uuid.uuid4().hex for _ in texts]
    now = time.time()
    rows = [
        {"id": mid, "project": project, "content": text,
         "content_hash": hashlib.sha256(text.encode()).hexdigest(), "type": "episodic",
         "source": "bench", "tags": [], "meta": {}, "merged_from": [], "tokens": 20,
         "created_at": now, "updated_at": now, "recall_count": 0, "recalls": [],
         "vector_ok": True}
        for mid, text in zip(ids, texts, strict=True)
    ]

    model, dim = engine.embedder.name, engine.embedder.dim

    def fn(tx: Tx) -> None:
        for start in range(0, len(rows), 5000):
            tx.db.execute(insert(MemoryRecord.__table__), rows[start : start + 5000])  # type: ignore[attr-defined]
        seq = vecrows._next_seq(tx.db)
        vec_rows = [{"id": mid, "project": project, "model": model, "dim": dim, "seq": seq,
                     "vector": vecrows.encode(v)} for mid, v in zip(ids, vectors, strict=True)]
        for start in range(0, len(vec_rows), 5000):
            tx.db.execute(insert(MemoryVector.__table__), vec_rows[start : start + 5000])  # type: ignore[attr-defined]

    engine.ledger.write_sync(fn)


def synthetic(base: np.ndarray, texts: list[str], start: int, n: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(start)
    pick = np.arange(start, start + n) % len(base)
    noise = rng.standard_normal((n, base.shape[1])).astype(np.float32) / np.sqrt(base.shape[1])
    vectors = normalize(base[pick] + 0.5 * noise)
    return [f"{texts[p]} (variant {start + i})" for i, p in enumerate(pick)], vectors


def queries(n: int) -> list[str]:
    out = [q for _, q in PAIRS]
    k = 0
    while len(out) < n:
        out.append(f"what happened with the {TOPICS[k % 20]} that {ACTIONS[(k * 7) % 12]}? ({k})")
        k += 1
    return out[:n]


def bench_latency(engine: MemoryEngine, deps: Deps, base: np.ndarray, levels: list[int]) -> None:
    print("memory_recall latency, limit 5, query embedding included (distinct queries)")
    texts = corpus(BASE)
    have = 0
    for level in levels:
        t = time.perf_counter()
        new_texts, vectors = synthetic(base, texts, have, level - have)
        _bulk(engine, "scale", new_texts, vectors)
        have = level
        load = time.perf_counter() - t
        engine.close()
        t = time.perf_counter()
        engine.ready()
        opened = time.perf_counter() - t
        qs = queries(300)
        for q in qs[:5]:
            engine.recall_sync(q, project="scale")  # warm-up
        lat = []
        for q in qs:
            t = time.perf_counter()
            engine.recall_sync(q, project="scale", limit=5)
            lat.append((time.perf_counter() - t) * 1000)
        tool = asyncio.run(_tool_latency(deps, qs[:200]))
        qvec = engine.embed(["what broke in the deploy pipeline?"])[0]
        search = []
        for _ in range(50):
            t = time.perf_counter()
            engine.search(qvec, 5, project="scale", type_=None)
            search.append((time.perf_counter() - t) * 1000)
        print(f" {level:>7,} memories  (loaded in {load:.1f} s, engine opened in {opened:.1f} s)")
        line("engine.recall p50 / p99", f"{pct(lat, 50):.1f} / {pct(lat, 99):.1f} ms")
        line("memory_recall via fastmcp.Client p50 / p99", f"{pct(tool, 50):.1f} / {pct(tool, 99):.1f} ms")
        line("index search alone (numpy matvec) p50", f"{pct(search, 50):.2f} ms")


async def _tool_latency(deps: Deps, qs: list[str]) -> list[float]:
    from fastmcp import Client
    from kimi_mcp.servers.memory import build_server

    out = []
    async with Client(build_server(deps)) as client:
        await client.call_tool("recall", {"query": qs[0]})
        for q in qs:
            t = time.perf_counter()
            await client.call_tool("recall", {"query": q, "limit": 5})
            out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=100_000)
    args = parser.parse_args()
    levels = [n for n in (1_000, 10_000, 100_000) if n <= args.max]
    tmp = Path(tempfile.mkdtemp(prefix="kimi-bench-memory-"))
    started = time.perf_counter()
    print("load average at start: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    try:
        (tmp / "scale").mkdir()
        settings = load_settings(overrides={
            "data_dir": str(tmp / "data"), "mcp": {"workspace": str(tmp / "scale")},
            "memory": {"embedder": "minilm", "promote_after": 1000},
        }, launch_dir=tmp)
        ledger = Ledger(settings.database_url())
        ledger.start()
        embedder = MiniLMEmbedder()
        engine = MemoryEngine(settings, ledger, embedder)
        deps = Deps(settings=settings, ledger=ledger, memory=engine)
        base = bench_embedder(embedder)
        bench_paraphrases(engine, base)
        bench_store(engine)
        bench_latency(engine, deps, base, levels)
        engine.close()
        ledger.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"done in {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores, "
          f"load average {load} (other processes share the machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
