"""With the real all-MiniLM-L6-v2 model: recall by meaning, not by shared words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from kimi_mcp.errors import MemoryEngineError
from kimi_mcp.memory.embedder import DIM, MiniLMEmbedder

if TYPE_CHECKING:
    from tests.memory.conftest import MakeEngine

pytestmark = pytest.mark.anyio

DISTRACTORS = [
    "The quarterly budget review moved to the second floor meeting room",
    "Bob prefers tabs over spaces and hates trailing commas",
    "The office coffee machine needs descaling every month",
    "Our mobile app supports dark mode since version four",
    "The marketing team launches the spring campaign in April",
    "Unit tests must not touch the network or sleep",
    "The cat sleeps on the warm windowsill every afternoon",
    "Invoices are exported as PDF and archived for ten years",
]
TARGET = "Production deploys happen on Tuesdays after the release review"
QUERY = "when do we ship new code to customers?"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


async def test_recall_finds_a_memory_by_meaning_without_shared_words(
    make_engine: MakeEngine, minilm: MiniLMEmbedder
) -> None:
    assert not _words(TARGET) & _words(QUERY)
    engine = make_engine(minilm)
    for text in [*DISTRACTORS[:4], TARGET, *DISTRACTORS[4:]]:
        await engine.store(text)
    hits = await engine.recall(QUERY, limit=3)
    assert hits[0].item.content == TARGET
    assert hits[0].score is not None and hits[0].score > (hits[1].score or 0)


async def test_paraphrases_score_higher_than_unrelated_text(minilm: MiniLMEmbedder) -> None:
    a, b, c = minilm.embed([
        "The server crashed because it ran out of memory",
        "An out-of-RAM condition brought the machine down",
        "We had pancakes for breakfast",
    ])
    assert a @ b > 0.5 > a @ c


def test_vectors_are_unit_length_with_384_dimensions(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["short", "a much longer sentence " * 200, ""])
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time(minilm: MiniLMEmbedder) -> None:
    texts = ["one", "two words", "three words here", "and a fourth, longer, sentence"]
    batch = minilm.embed(texts)
    single = np.stack([minilm.embed([t])[0] for t in texts])
    assert np.allclose(batch, single, atol=1e-4)


def test_a_model_file_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    with pytest.raises(MemoryEngineError, match="sha256"):
        MiniLMEmbedder(path=fake).load()
