"""The GPT's autoregressive loop on torch (the torch runtime of the ``t2s`` model; CUDA graphs on a GPU).

Same contract and the same rules as the onnxruntime loop (:class:`gsv_triton.backend.t2s.loop.T2SRunner`):
``generate(phone_ids, bert, prompt_codes, top_k=..., seed=..., ...)`` -> tokens per row; EOS suppressed for the
first ``min_tokens_before_eos`` steps, a row stops when the argmax of its penalised logits or its sample is EOS
(that token dropped), at the cap the first token is dropped like upstream's slice. Sampling is the SAME numpy code
(:func:`gsv_triton.backend.t2s.sampling.sample_rows`) with the same per-row ``np.random.Generator(seed)`` streams: only the
logits come from torch, so on the CPU (float32) the tokens equal the onnxruntime loop's for any seed, and on CUDA
(float16) they equal them until a rounding difference flips a near tie.

What differs is the cache and the step:

* one static KV buffer per instance, ``[2, L, rows, H, context, hd]`` (head-major so attention reads each
  row/head as one strided block), allocated once and reused by every request; a step writes each row's K/V at
  that row's slot with ``index_put_`` (no concatenation, no reallocation, no compaction when rows finish: a finished row
  keeps computing on its last token and its output is ignored, which leaves the other rows untouched because
  rows never mix);
* batch rows are padded to a bucket (1, 2, 4, 8, ...) and attention reads a window of the cache rounded up to
  ``CONTEXT_BUCKET`` positions, masked by ``key <= s`` and the row's valid text columns;
* on CUDA each (batch bucket, window) step is captured once as a CUDA graph and replayed, so a step is one
  launch; on the CPU the same step runs eagerly over exactly ``s + 1`` positions. :meth:`TorchT2SRunner.warm_up`
  captures every window of the cache at load (:func:`capture_plan`), so no request waits for a capture, and every
  capture runs on the runner's one side stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gsv_triton.backend.cancel import NEVER
from gsv_triton.backend.t2s.loop import BERT_DIM, T2SBatch, record_step, sample_step
from gsv_triton.backend.torch_device import Placement
from gsv_triton.networks.t2s import Text2SemanticDecoder, prefill_mask, sinusoid
from gsv_triton.settings import SamplingDefaults

# Attention windows of the captured steps grow in steps of this many positions: more buckets = less wasted
# attention work per step, more graphs to capture (each capture costs ~L small launches once).
CONTEXT_BUCKET = 256
# Cache positions allocated up front (text + prompt + generated tokens); a longer request grows the buffer once.
DEFAULT_MAX_CONTEXT = 2048
# Eager runs on a side stream before a capture (cuBLAS and SDPA pick and initialise their kernels there).
CAPTURE_WARMUP_RUNS = 2


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def batch_bucket(rows: int) -> int:
    """The captured batch size serving ``rows`` rows: the next power of two."""
    return 1 << max(0, rows - 1).bit_length()


def batch_buckets(rows: int) -> tuple[int, ...]:
    """Every batch bucket up to the one serving ``rows`` rows: 1, 2, 4, ..."""
    top = batch_bucket(max(1, rows))
    return tuple(1 << i for i in range(top.bit_length()))


def attention_window(top: int, context: int) -> int:
    """The captured attention window of a step whose highest written slot is ``top - 1``."""
    return min(_round_up(max(1, top), CONTEXT_BUCKET), context)


def capture_plan(buckets: Sequence[int], context: int) -> list[tuple[int, int]]:
    """Every (batch bucket, attention window) a cache of ``context`` positions can step in: what a warm-up
    captures so that no step of any request waits for a capture (a capture mid-flight stalls every lane)."""
    windows = sorted({attention_window(top, context) for top in range(1, context + 1, CONTEXT_BUCKET)})
    return [(rows, window) for rows in sorted(set(buckets)) for window in windows]


@dataclass
class _StepInputs:
    """Device tensors a captured step reads (their addresses are baked into the graphs)."""

    kv: torch.Tensor  # [2, L, rows, H, context, hd], a view of the runner's one storage
    control: torch.Tensor  # [3, rows] int64: token, position, slot per row (one host-to-device copy per step)
    base_valid: torch.Tensor  # [rows, context] bool: False on a row's padded text columns only

    @property
    def token(self) -> torch.Tensor:
        return self.control[0]

    @property
    def position(self) -> torch.Tensor:
        """The audio position of each row's token."""
        return self.control[1]

    @property
    def slot(self) -> torch.Tensor:
        """The cache index each row writes (= the number of valid positions before it)."""
        return self.control[2]


class TorchT2SRunner:
    """Runs :class:`Text2SemanticDecoder` with a static KV cache; drop-in for ``T2SRunner`` in ``run_t2s``."""

    def __init__(
        self,
        decoder: Text2SemanticDecoder,
        placement: Placement,
        *,
        max_context: int = DEFAULT_MAX_CONTEXT,
        cuda_graphs: bool | None = None,
        bucket_windows: bool | None = None,
        min_tokens_before_eos: int = SamplingDefaults.min_tokens_before_eos,
    ) -> None:
        """``cuda_graphs`` (default: on CUDA) captures the steps; ``bucket_windows`` (default: with graphs) makes
        attention read whole ``CONTEXT_BUCKET`` windows, masked past the slot, instead of exactly ``s + 1``
        positions (graphs need it; the CPU tests use it to check that masking)."""
        cfg = decoder.config
        self.placement = placement
        self.decoder = decoder.to(device=placement.device, dtype=placement.dtype).eval().requires_grad_(False)
        self.n_layer, self.heads, self.head_dim = cfg.n_layer, cfg.head, cfg.head_dim
        self.hidden, self.vocab, self.eos = cfg.hidden_dim, cfg.vocab_size, cfg.eos
        self.min_tokens_before_eos = min_tokens_before_eos
        self.use_graphs = placement.is_cuda if cuda_graphs is None else bool(cuda_graphs)
        if self.use_graphs and not placement.is_cuda:
            raise ValueError("CUDA graphs need a CUDA placement")
        self.bucket_windows = self.use_graphs if bucket_windows is None else bool(bucket_windows)
        if self.use_graphs and not self.bucket_windows:
            raise ValueError("CUDA graphs need bucketed attention windows")
        self._max_context = _round_up(max(1, max_context), CONTEXT_BUCKET)
        # Position tables in float32 (like the exported graphs); alpha stays float32 for the same reason.
        self._alpha_text = self.decoder.ar_text_position.alpha.detach().float()
        self._alpha_audio = self.decoder.ar_audio_position.alpha.detach().float()
        self._pe = torch.empty(0)
        self._arange = torch.empty(0)
        self._storage: torch.Tensor | None = None
        self._rows_capacity = 0
        self._context = 0
        self._inputs: dict[int, _StepInputs] = {}
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool = None
        self._stream: torch.cuda.Stream | None = None

    # -- public -----------------------------------------------------------------------------------------------
    @property
    def graph_count(self) -> int:
        """CUDA graphs captured so far (one per batch bucket and attention window used)."""
        return len(self._graphs)

    @property
    def cache_bytes(self) -> int:
        return 0 if self._storage is None else self._storage.numel() * self._storage.element_size()

    @torch.no_grad()
    def generate(self, phone_ids, bert, prompt_codes, **settings) -> list[np.ndarray]:
        """Generated semantic tokens per row (int64, EOS and the dropped token removed); arguments as in
        :meth:`gsv_triton.backend.t2s.loop.T2SRunner.generate`."""
        should_stop = settings.pop("should_stop", None) or NEVER.check
        batch = self.batch(phone_ids, bert, prompt_codes, **settings)
        max_new_tokens, eos_enabled = batch.max_new_tokens, batch.eos_enabled
        b, prompts = batch.rows, batch.prompts
        lengths = np.array([len(p) for p in batch.phones], dtype=np.int64)
        tx, ty = int(lengths.max()), prompts.shape[1]
        s = tx + ty
        rows = batch_bucket(b)
        self._reserve(rows, s + max_new_tokens)
        inputs = self._inputs_for(rows)
        logits = self._prefill(batch.phones, batch.berts, lengths, prompts, inputs)

        rngs = [np.random.default_rng(x) for x in batch.seeds]
        seen = batch.seen_tokens(self.vocab)
        generated: list[list[int]] = [[] for _ in range(b)]
        results: list[np.ndarray | None] = [None] * b
        alive = np.arange(b)
        feed = np.zeros(rows, dtype=np.int64)  # finished and padding rows keep feeding their last token
        for idx in range(max_new_tokens):
            should_stop()
            suppress = idx < self.min_tokens_before_eos or not eos_enabled
            tokens, stops = sample_step(logits[alive], seen[alive], [batch.params] * len(alive),
                                        [rngs[r] for r in alive], eos=self.eos, suppress_eos=suppress)  # fmt: skip
            keep = record_step(tokens, stops, alive, generated, results, at_cap=idx == max_new_tokens - 1)
            seen[alive[keep], tokens[keep]] = True
            feed[alive[keep]] = tokens[keep]
            alive = alive[keep]
            if alive.size == 0:
                break
            logits = self._step(inputs, rows, feed, position=ty + idx, slot=s)
            s += 1
        return [r if r is not None else np.zeros(0, dtype=np.int64) for r in results]

    def batch(self, phone_ids, bert, prompt_codes, **settings) -> T2SBatch:
        """The validated inputs of one call (:meth:`T2SBatch.from_inputs` with this model's vocabularies)."""
        return T2SBatch.from_inputs(
            phone_ids,
            bert,
            prompt_codes,
            eos=self.eos,
            phoneme_vocab=self.decoder.config.phoneme_vocab_size,
            **settings,
        )

    # -- cache and inputs -------------------------------------------------------------------------------------
    def _reserve(self, rows: int, positions: int) -> None:
        """Make the one cache storage hold ``rows`` x ``positions``; growing it drops every captured graph."""
        context = max(self._context, self._max_context, _round_up(positions, CONTEXT_BUCKET))
        rows = max(rows, self._rows_capacity)
        if self._storage is not None and rows == self._rows_capacity and context == self._context:
            return
        dev = self.placement.device
        self._graphs.clear()
        self._inputs.clear()
        self._storage = None
        if self.placement.is_cuda:
            torch.cuda.empty_cache()
        numel = 2 * self.n_layer * rows * self.heads * context * self.head_dim
        # Zeros, not empty: padding rows attend over stale positions, which must at least be finite.
        self._storage = torch.zeros(numel, dtype=self.placement.dtype, device=dev)
        self._rows_capacity, self._context = rows, context
        self._pe = sinusoid(torch.arange(context), self.hidden).to(dev)
        self._arange = torch.arange(context, device=dev)
        self._row_index = torch.arange(rows, device=dev).unsqueeze(1)  # [rows, 1] and [1, H]: index_put_ grid
        self._head_index = torch.arange(self.heads, device=dev).unsqueeze(0)

    def _inputs_for(self, rows: int) -> _StepInputs:
        """The step inputs of a batch bucket: views of the one storage, created once per bucket."""
        if rows not in self._inputs:
            dev, ctx = self.placement.device, self._context
            shape = (2, self.n_layer, rows, self.heads, ctx, self.head_dim)
            kv = self._storage[: int(np.prod(shape))].view(shape)
            self._inputs[rows] = _StepInputs(
                kv=kv,
                control=torch.zeros(3, rows, dtype=torch.int64, device=dev),
                base_valid=torch.ones(rows, ctx, dtype=torch.bool, device=dev),
            )
        return self._inputs[rows]

    # -- prefill ----------------------------------------------------------------------------------------------
    def _prefill(
        self,
        phones: list[np.ndarray],
        berts: list[np.ndarray],
        lengths: np.ndarray,
        prompts: np.ndarray,
        inputs: _StepInputs,
        lanes: np.ndarray | None = None,
    ) -> np.ndarray:
        """Spec 2.1.3 for the right-padded rows; writes their K/V into the cache rows ``lanes`` (default: the first
        rows, the others reset to fully valid), returns logits [b, V] f32."""
        dev, dt, dec = self.placement.device, self.placement.dtype, self.decoder
        b, tx, ty = len(phones), int(lengths.max()), prompts.shape[1]
        ids = np.zeros((b, tx), dtype=np.int64)
        feats = np.zeros((b, BERT_DIM, tx), dtype=np.float32)
        for r, (p, f) in enumerate(zip(phones, berts, strict=True)):
            ids[r, : len(p)] = p
            feats[r, :, : len(p)] = f
        ids_t = torch.from_numpy(ids).to(dev)
        bert_t = torch.from_numpy(feats).to(device=dev, dtype=dt)
        codes_t = torch.from_numpy(np.array(prompts, dtype=np.int64)).to(dev)  # a copy: prompts may be a read-only view
        lengths_t = torch.from_numpy(lengths).to(dev)
        lanes_t = None if lanes is None else torch.from_numpy(np.asarray(lanes, dtype=np.int64)).to(dev)
        x = dec.ar_text_embedding(ids_t) + dec.bert_proj(bert_t.transpose(1, 2))
        x = x + (self._alpha_text * self._pe[:tx]).to(dt)
        y = dec.ar_audio_embedding(codes_t) + (self._alpha_audio * self._pe[:ty]).to(dt)
        xy = torch.cat([x, y], dim=1)
        s = tx + ty
        mask = prefill_mask(lengths_t, tx, ty).unsqueeze(1)  # [b,1,S,S], True = may attend
        for layer, block in enumerate(dec.h.layers):
            q, k, v = (
                t.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)
                for t in F.linear(xy, block.self_attn.in_proj_weight, block.self_attn.in_proj_bias).chunk(3, dim=-1)
            )
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            xy = block._finish(xy, attn.transpose(1, 2).reshape(b, s, self.hidden))
            if lanes is None:
                inputs.kv[0, layer, :b, :, :s] = k
                inputs.kv[1, layer, :b, :, :s] = v
            else:
                inputs.kv[0, layer][lanes_t, :, :s] = k
                inputs.kv[1, layer][lanes_t, :, :s] = v
        row_valid = torch.ones(b, inputs.base_valid.shape[1], dtype=torch.bool, device=dev)
        row_valid[:, :tx] = torch.arange(tx, device=dev).unsqueeze(0) < lengths_t.unsqueeze(1)
        if lanes is None:
            inputs.base_valid.fill_(True)  # padding rows: never a fully masked row
            inputs.base_valid[:b] = row_valid
        else:
            inputs.base_valid[lanes_t] = row_valid
        return dec.ar_predict_layer(xy[:, -1]).float().cpu().numpy()

    # -- decode step ------------------------------------------------------------------------------------------
    def _step(self, inputs: _StepInputs, rows: int, feed: np.ndarray, position, slot) -> np.ndarray:
        """One step of every row: ``feed`` tokens [rows]; ``position`` and ``slot`` one int or one per row."""
        control = np.empty((3, rows), dtype=np.int64)
        control[0], control[1], control[2] = feed, position, slot
        inputs.control.copy_(torch.from_numpy(control))
        top = int(control[2].max()) + 1
        window = attention_window(top, self._context) if self.bucket_windows else top
        if self.use_graphs:
            graph, out = self._graph(inputs, window)
            graph.replay()
        else:
            out = self._step_compute(inputs, window)
        return out.cpu().numpy()

    def _step_compute(self, inputs: _StepInputs, window: int) -> torch.Tensor:
        """One token for every row of the bucket: logits [rows, V] float32. Graph-safe: no host reads, the
        slot and position come from device tensors."""
        dec, dt = self.decoder, self.placement.dtype
        rows = inputs.token.shape[0]
        h, hd, d = self.heads, self.head_dim, self.hidden
        pe = self._pe.index_select(0, inputs.position)  # [rows, D]
        x = dec.ar_audio_embedding(inputs.token) + (self._alpha_audio * pe).to(dt)
        slot = inputs.slot.unsqueeze(1)  # [rows, 1]
        valid = inputs.base_valid[:, :window] & (self._arange[:window].unsqueeze(0) <= slot)
        mask = valid[:, None, None, :]
        at = (self._row_index[:rows], self._head_index, slot)  # row r, every head, position slot[r]
        for layer, block in enumerate(dec.h.layers):
            qkv = F.linear(x, block.self_attn.in_proj_weight, block.self_attn.in_proj_bias)
            q, k, v = (t.reshape(rows, h, 1, hd) for t in qkv.chunk(3, dim=-1))
            keys, values = inputs.kv[0, layer], inputs.kv[1, layer]  # [rows, H, context, hd]
            keys.index_put_(at, k.squeeze(2))
            values.index_put_(at, v.squeeze(2))
            attn = F.scaled_dot_product_attention(q, keys[:, :, :window], values[:, :, :window], attn_mask=mask)
            x = block._finish(x, attn.reshape(rows, d))
        return dec.ar_predict_layer(x).float()

    def _graph(self, inputs: _StepInputs, window: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        """The captured step of these step inputs (a batch bucket's views) and window, captured on first use.

        The warm-up runs repeat the step about to be replayed (same token, same slot), so the K/V they write are
        the values the replay writes again: capturing in the middle of a request is harmless.
        """
        # A graph is bound to the addresses and layout of the tensors it reads.
        key = (inputs.kv.data_ptr(), tuple(inputs.kv.shape), tuple(inputs.kv.stride()), inputs.control.data_ptr(),
               inputs.base_valid.data_ptr(), tuple(inputs.base_valid.shape), window)  # fmt: skip
        if key not in self._graphs:
            with torch.cuda.device(self.placement.device):
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                stream = self.capture_stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(CAPTURE_WARMUP_RUNS):
                        self._step_compute(inputs, window)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                # Graphs share one memory pool: only one runs at a time and its output is read right away.
                with torch.cuda.graph(graph, pool=self._pool, stream=stream):
                    out = self._step_compute(inputs, window)
            self._graphs[key] = (graph, out)
        return self._graphs[key]

    def capture_stream(self) -> torch.cuda.Stream:
        """The one side stream of every warm-up run and capture of this runner (made on first use): a new
        stream per capture would leave dozens of streams behind after a full warm-up."""
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.placement.device)
        return self._stream

    def warm_up(self, batch_buckets: Sequence[int] = (1,), windows: int | None = None) -> int:
        """Capture the steps of each batch bucket now (CUDA): the first ``windows`` attention windows, or (None)
        every window of the cache, so that no request pays for a capture; a no-op on the CPU. Returns the number
        of graphs held afterwards."""
        if not self.use_graphs:
            return 0
        with torch.no_grad():
            self._reserve(max(batch_buckets), CONTEXT_BUCKET)  # the largest first: growing drops graphs
            self.capture(self._inputs_for, batch_buckets, windows)
        return self.graph_count

    def capture(self, inputs_for, buckets: Sequence[int], windows: int | None = None) -> None:
        """Capture :func:`capture_plan` of the current cache (only its first ``windows`` windows when given);
        ``inputs_for(rows)`` gives a bucket's step inputs (the runner's own, or an engine's lane views)."""
        plan = capture_plan(buckets, self._context)
        if windows is not None:
            plan = [(rows, w) for rows, w in plan if w <= windows * CONTEXT_BUCKET]
        with torch.no_grad():
            for rows, window in plan:
                self._graph(inputs_for(rows), window)
        if self.placement.is_cuda:
            torch.cuda.synchronize(self.placement.device)
