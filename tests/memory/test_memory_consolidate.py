from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from kimi_mcp.memory.consolidate import leader_clusters

if TYPE_CHECKING:
    from tests.memory.conftest import MakeEngine

pytestmark = pytest.mark.anyio


async def _seed(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    ids = {}
    for key, text, tags in [
        ("a1", "Deploy on Tuesday after review", ["ops"]),
        ("a2", "deploy on tuesday, after review!", ["release"]),
        ("a3", "After review: deploy on Tuesday", []),
        ("b1", "Use ruff for linting", ["py"]),
        ("b2", "use RUFF for linting.", []),
        ("c1", "The cat likes fish", []),
    ]:
        ids[key] = (await engine.store(text, tags=tags)).id
    return ids


async def test_a_dry_run_reports_clusters_and_changes_nothing(make_engine: MakeEngine) -> None:
    engine = make_engine()
    ids = await _seed(engine)
    report = await engine.consolidate(0.95, dry_run=True)
    assert report.dry_run and report.examined == 6
    assert sorted(sorted(c.ids) for c in report.clusters) == sorted(
        [sorted([ids["a1"], ids["a2"], ids["a3"]]), sorted([ids["b1"], ids["b2"]])])
    assert all(c.merged_id is None for c in report.clusters)
    assert engine.count() == 6


async def test_consolidation_merges_clusters_into_semantic_memories(make_engine: MakeEngine) -> None:
    engine = make_engine()
    ids = await _seed(engine)
    report = await engine.consolidate(0.95, dry_run=False)
    assert report.merged == 5 and engine.count() == 3
    merged = {c.ids[0]: c.merged_id for c in report.clusters}
    [deploy] = await engine.get([merged[ids["a1"]]])
    assert deploy.type == "semantic" and deploy.source == "consolidate"
    assert sorted(deploy.merged_from) == sorted([ids["a1"], ids["a2"], ids["a3"]])
    assert deploy.tags == ["ops", "release"]
    for key in ("a1", "a2", "a3"):
        assert (await engine.get([ids[key]])) == []
        assert engine.merged_into(ids[key]) == deploy.id
    assert deploy.content.startswith("Deploy on Tuesday after review")
    hits = await engine.recall("deploy on tuesday after review", limit=1)
    assert hits[0].item.id == deploy.id
    again = await engine.consolidate(0.95, dry_run=True)
    assert again.clusters == []


async def test_masked_tool_outputs_are_never_merged(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.store_text_sync("same words here")
    await engine.store("Same words here!")
    engine.flush_vectors()
    engine.ledger.flush()
    report = await engine.consolidate(0.9, dry_run=False)
    assert report.clusters == [] and engine.count() == 2


def test_leader_clusters_do_not_chain() -> None:
    # b is close to a and to c, but a and c are not close: c must not join a's cluster
    angle = np.deg2rad([0.0, 20.0, 40.0])
    vectors = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    assert leader_clusters(vectors, threshold=0.9) == [[0, 1]]
