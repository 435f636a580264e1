from __future__ import annotations

import numpy as np

from kimi_mcp.memory.embedder import normalize
from kimi_mcp.memory.index import VectorIndex


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return normalize(np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32))


def test_search_ranks_by_cosine_within_a_project() -> None:
    index = VectorIndex(8)
    vecs = _vectors(100)
    index.add("p", [(f"m{i}", "episodic") for i in range(100)], vecs)
    index.add("q", [("other", "episodic")], vecs[:1])
    found = index.search(vecs[42], 3, project="p")
    assert found[0][0] == "m42" and found[0][1] > 0.999
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert {m for m, _ in index.search(vecs[0], 2, project=None)} == {"m0", "other"}


def test_removed_rows_disappear_and_compaction_keeps_the_rest() -> None:
    index = VectorIndex(8)
    vecs = _vectors(3000)
    index.add("p", [(f"m{i}", "episodic") for i in range(3000)], vecs)
    index.remove("p", [f"m{i}" for i in range(0, 3000, 2)])
    assert len(index) == 1500
    assert index.search(vecs[10], 1, project="p")[0][0] != "m10"
    assert index.search(vecs[11], 1, project="p")[0][0] == "m11"
    ids, matrix = index.vectors_of("p")
    assert len(ids) == 1500 and np.allclose(matrix[ids.index("m11")], vecs[11])


def test_type_filter_and_retyping() -> None:
    index = VectorIndex(8)
    vecs = _vectors(4)
    index.add("p", [("a", "episodic"), ("b", "semantic"), ("c", "episodic"), ("d", "episodic")], vecs)
    assert [m for m, _ in index.search(vecs[0], 4, project="p", type_="semantic")] == ["b"]
    index.set_type("p", "a", "frequent")
    assert [m for m, _ in index.search(vecs[0], 4, project="p", type_="frequent")] == ["a"]


def test_re_adding_an_id_replaces_its_vector() -> None:
    index = VectorIndex(8)
    vecs = _vectors(2)
    index.add("p", [("a", "episodic")], vecs[:1])
    index.remove("p", ["a"])
    index.add("p", [("a", "episodic")], vecs[1:])
    ids, matrix = index.vectors_of("p")
    assert ids == ["a"] and np.allclose(matrix[0], vecs[1])
