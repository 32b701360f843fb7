"""A small static-cache decoder over a Llama / Qwen2 model's own modules, with the decode step as a CUDA graph.

Why it exists: at the batch sizes GRPO and evaluation use, plain `generate` spends almost all of its time on the
host (Python, kernel launches, a sync per token for EOS), not on the GPU. Here the KV cache is allocated once, the
one-token step is captured once per (batch, length) shape and replayed, EOS is tracked on the device and checked
every `check_every` steps.

What it reuses rather than rewrites: every projection, norm, MLP and the rotary table come from the model's own
modules (so PEFT's LoRA layers run live inside the graph: an optimizer step updates their tensors in place and
the next replay sees the new weights), and sampling uses transformers' own logits warpers in `generate`'s order
(temperature, top-k, top-p, min-p), so a draw has the distribution `generate` has under the same settings. Only
the attention over the static cache and the loop are ours.

Anything it cannot run exactly (another architecture, sliding-window attention, a repetition penalty, ...) is
reported by `unsupported_reason`; callers then use `generate` and log that reason. On CPU it runs the same code
without graphs (tests check it token for token against `generate`); callers use plain `generate` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SUPPORTED_ARCHITECTURES = ("llama", "qwen2")
_PROMPT_BUCKET = 64        # rollouts: prompts left-padded to a multiple of this so a few graph shapes serve all
_PREFILL_TOKENS = 1 << 19  # prompt tokens prefilled together: bounds activation memory on large evaluations
_MAX_GRAPHS = 4            # captured shapes kept per decoder (each holds its own static buffers)
_CACHE_ALIGN = 64          # cache length rounded up to this: 4.8 s -> 3.6 s for a GSM8K-test evaluation (H200)
_KEY_BLOCK = 0             # decode attends to keys in blocks of this many positions (0 = the whole cache): no gain
                           # measured at 256 new tokens (docs/fast-generation.md)


@dataclass(frozen=True)
class Sampling:
    """The draw made at each step. `greedy` ignores the rest; otherwise `generate`'s warpers, in its order."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float | None = None


def causal_lm(model: Any) -> Any:
    """The plain `*ForCausalLM` module under PEFT / accelerate wrappers (its submodules stay the live ones)."""
    inner = model
    for _ in range(4):
        if hasattr(inner, "get_base_model"):
            inner = inner.get_base_model()
        elif hasattr(inner, "module") and not hasattr(inner, "lm_head"):
            inner = inner.module
        else:
            break
    return inner


def unsupported_reason(model: Any, sampling_extras: dict[str, Any] | None = None) -> str | None:
    """Why this model (or these generation settings) cannot use the fast decoder; None when it can."""
    lm = causal_lm(model)
    cfg = getattr(lm, "config", None)
    mtype = getattr(cfg, "model_type", None)
    if mtype not in SUPPORTED_ARCHITECTURES:
        return f"architecture {mtype!r} is not one of {SUPPORTED_ARCHITECTURES}"
    body = getattr(lm, "model", None)
    for attr in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(body, attr):
            return f"model has no .model.{attr} (unexpected module layout)"
    if not hasattr(lm, "lm_head"):
        return "model has no lm_head"
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        return "sliding-window attention is not implemented in the fast decoder"
    rope = getattr(cfg, "rope_scaling", None) or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type")) in ("dynamic", "longrope"):
        return f"rope type {rope.get('rope_type', rope.get('type'))!r} changes with sequence length"
    for key, value in (sampling_extras or {}).items():
        neutral = {"repetition_penalty": 1.0, "typical_p": 1.0, "top_h": None, "epsilon_cutoff": 0.0,
                   "eta_cutoff": 0.0, "no_repeat_ngram_size": 0, "suppress_tokens": None,
                   "bad_words_ids": None, "num_beams": 1}
        if key in neutral and value not in (neutral[key], None):
            return f"generation setting {key}={value!r} is not implemented in the fast decoder"
    return None


def _warpers(s: Sampling) -> list[Any]:
    from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list[Any] = []
    if s.temperature != 1.0:
        out.append(TemperatureLogitsWarper(s.temperature))
    if s.top_k:
        out.append(TopKLogitsWarper(top_k=s.top_k))
    if s.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=s.top_p))
    if s.min_p is not None:
        out.append(MinPLogitsWarper(min_p=s.min_p))
    return out


class _Shape:
    """Static buffers (KV cache, tokens, flags) and the captured step for one (batch, prompt, new-token) shape."""

    def __init__(self, dec: FastDecoder, batch: int, prompt_len: int, max_new: int, eos: Sequence[int]) -> None:
        import torch

        self.batch, self.prompt_len, self.max_new = batch, prompt_len, max_new
        # Positions past prompt_len + max_new are never valid keys: masked, they add exact zeros.
        self.total = _round_up(prompt_len + max_new, dec.cache_align)
        d, dev = dec, dec.device
        shape = (d.n_layers, batch, d.n_kv, self.total, d.head_dim)
        self.k = torch.zeros(shape, dtype=d.dtype, device=dev)
        self.v = torch.zeros(shape, dtype=d.dtype, device=dev)
        self.pad = torch.zeros(batch, dtype=torch.long, device=dev)       # left padding of each row
        self.tok = torch.zeros(batch, dtype=torch.long, device=dev)       # token fed to the next step
        self.cur = torch.zeros((), dtype=torch.long, device=dev)          # cache index that token is written to
        self.done = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.out = torch.zeros(batch, max_new, dtype=torch.long, device=dev)
        self.key_idx = torch.arange(self.total, device=dev)
        self.eos = torch.tensor(list(eos), dtype=torch.long, device=dev)
        # A graph reads these by address: each shape holds its own, so nothing it reads is ever freed or moved.
        self.cos, self.sin = dec.rope_table(self.total)
        self.graphs: dict[int, Any] = {}   # key length attended -> the step captured for it

    def key_len(self, step: int, block: int) -> int:
        """Keys the decode step `step` (0 = the first after prefill) attends to: the blocks written so far."""
        if block <= 0:
            return self.total
        return min(self.total, _round_up(self.prompt_len + step + 1, block))


def _round_up(n: int, k: int) -> int:
    return -(-n // max(1, k)) * max(1, k)


class FastDecoder:
    """Batched greedy or sampled generation for one model; graphs are captured lazily and reused."""

    def __init__(self, model: Any, use_graphs: bool | None = None, check_every: int = 8,
                 cache_align: int = _CACHE_ALIGN, key_block: int = _KEY_BLOCK) -> None:
        import torch

        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"fast decoder: {reason}")
        self.lm = causal_lm(model)
        body = self.lm.model
        cfg = self.lm.config
        self.layers = list(body.layers)[: cfg.num_hidden_layers]
        self.n_layers = len(self.layers)
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.group = self.n_heads // self.n_kv
        self.scaling = attn.scaling
        self.embed = body.embed_tokens
        self.norm = body.norm
        self.rotary = body.rotary_emb
        self.dtype = self.embed.weight.dtype
        self.device = self.embed.weight.device
        self.use_graphs = (self.device.type == "cuda") if use_graphs is None else use_graphs
        if self.use_graphs and self.device.type != "cuda":
            raise ValueError("fast decoder: CUDA graphs need a CUDA device")
        self.check_every = max(1, check_every)
        if cache_align < 1 or key_block < 0:
            raise ValueError(f"fast decoder: cache_align={cache_align}, key_block={key_block}: expected >= 1, >= 0")
        self.cache_align, self.key_block = cache_align, key_block
        self._shapes: dict[tuple[int, int, int, Sampling, tuple[int, ...]], _Shape] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None

    # -- the model pieces ------------------------------------------------------------------------------------
    def rope_table(self, length: int) -> tuple[Any, Any]:
        """cos/sin for positions 0..length-1 from the model's own rotary module ([length, head_dim])."""
        import torch

        pos = torch.arange(length, device=self.device)[None]
        dummy = torch.zeros(1, dtype=self.dtype, device=self.device)
        cos, sin = self.rotary(dummy, pos)
        return cos[0], sin[0]   # in the model's dtype, as the model's own path applies them

    @staticmethod
    def _rotate(x: Any, cos: Any, sin: Any) -> Any:
        import torch

        half = x.shape[-1] // 2
        rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rot * sin

    def _layer_qkv(self, layer: Any, h: Any, cos: Any, sin: Any) -> tuple[Any, Any, Any]:
        b, s, _ = h.shape
        a = layer.self_attn
        q = a.q_proj(h).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = a.k_proj(h).view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        v = a.v_proj(h).view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin), v

    def _logits(self, x: Any) -> Any:
        # In the model's dtype: greedy's argmax is the same on the exact fp32 cast `generate` makes (and
        # skips writing a [batch, vocab] fp32 tensor a step); sampling casts before its warpers, as `generate` does.
        return self.lm.lm_head(self.norm(x))

    # -- prefill (eager: prompt lengths vary) ----------------------------------------------------------------
    def _prefill(self, st: _Shape, ids: Any, pad: Any, rows: slice) -> Any:
        """Fill the cache for `rows` from the left-padded prompts `ids`; returns the last position's logits."""
        import torch
        import torch.nn.functional as F

        b, p = ids.shape
        cos_t, sin_t = st.cos, st.sin
        idx = torch.arange(p, device=self.device)
        pos = (idx[None, :] - pad[:, None]).clamp(min=0)
        cos, sin = cos_t[pos], sin_t[pos]
        key_ok = (idx[None, None, :] <= idx[None, :, None]) & (idx[None, None, :] >= pad[:, None, None])
        key_ok = key_ok | torch.eye(p, dtype=torch.bool, device=self.device)[None]  # pad rows see themselves: no NaN
        mask = key_ok[:, None]
        x = self.embed(ids)
        for li, layer in enumerate(self.layers):
            h = layer.input_layernorm(x)
            q, k, v = self._layer_qkv(layer, h, cos, sin)
            st.k[li, rows, :, :p] = k
            st.v[li, rows, :, :p] = v
            k = k.repeat_interleave(self.group, dim=1)
            v = v.repeat_interleave(self.group, dim=1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
            x = x + layer.self_attn.o_proj(o.transpose(1, 2).reshape(b, p, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self._logits(x[:, -1])

    # -- one decode step (static shapes: captured as a graph on CUDA) ----------------------------------------
    def _step(self, st: _Shape, pick: Any, pad_id: int, klen: int) -> None:
        """One token for every row, attending to the first `klen` cache positions (all written ones among them)."""
        import torch
        import torch.nn.functional as F

        b = st.batch
        cos_t, sin_t = st.cos, st.sin
        pos = (st.cur - st.pad).clamp(min=0)
        cos, sin = cos_t[pos][:, None], sin_t[pos][:, None]
        key_idx = st.key_idx[:klen]
        valid = (key_idx[None, :] >= st.pad[:, None]) & (key_idx[None, :] <= st.cur)
        bias = torch.zeros(valid.shape, dtype=self.dtype, device=self.device)
        bias = bias.masked_fill(~valid, float("-inf"))[:, None, None, :]
        x = self.embed(st.tok[:, None])
        # Clamped only for a graph's warm-up near the end (its extra steps run past the last slot; what they write
        # is restored or never read); a real step never reaches the bounds.
        at = st.cur.clamp(max=st.total - 1).view(1)
        for li, layer in enumerate(self.layers):
            h = layer.input_layernorm(x)
            q, k, v = self._layer_qkv(layer, h, cos, sin)
            st.k[li].index_copy_(2, at, k)
            st.v[li].index_copy_(2, at, v)
            # Query heads of one KV head side by side as the "query length": GQA without copying the cache.
            qg = q.reshape(b, self.n_kv, self.group, self.head_dim)
            o = F.scaled_dot_product_attention(qg, st.k[li, :, :, :klen], st.v[li, :, :, :klen], attn_mask=bias,
                                               scale=self.scaling)
            x = x + layer.self_attn.o_proj(o.reshape(b, 1, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        nxt = pick(self._logits(x[:, 0]))
        nxt = torch.where(st.done, torch.full_like(nxt, pad_id), nxt)
        st.out.index_copy_(1, (st.cur - st.prompt_len + 1).clamp(max=st.max_new - 1).view(1), nxt[:, None])
        st.done |= torch.isin(nxt, st.eos)
        st.tok.copy_(nxt)
        st.cur += 1

    def _picker(self, sampling: Sampling) -> Any:
        import torch

        if sampling.greedy:
            return lambda logits: logits.argmax(dim=-1)
        warpers = _warpers(sampling)

        def pick(logits: Any) -> Any:
            logits = logits.float()
            for w in warpers:
                logits = w(None, logits)
            probs = torch.softmax(logits, dim=-1)
            # The exponential race draws index i with probability probs[i] (as `multinomial` does) and, unlike
            # `multinomial`, is a plain elementwise op that a CUDA graph can capture.
            race = torch.empty_like(probs).exponential_()
            return (probs / race).argmax(dim=-1)

        return pick

    # -- public ----------------------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        sampling: Sampling = Sampling(),
        prompt_bucket: int = _PROMPT_BUCKET,
        prefill_tokens: int = _PREFILL_TOKENS,
        timings: dict[str, Any] | None = None,
    ) -> list[list[int]]:
        """New tokens per prompt, cut after the first EOS (which is kept, as TRL keeps it), in input order.

        `prompt_bucket=1` pads to the longest prompt exactly, as `generate` does: a one-off evaluation then runs
        the same matrix shapes as `generate` (bf16 results depend on them); repeated calls of varying prompt
        length (rollouts) reuse a captured graph by padding to a bucket instead. `timings`, when given, receives
        the prefill and decode seconds and the steps run (the device is synchronised for them: benchmarks only).
        """
        import time

        import torch

        def clock() -> float:
            if timings is not None and self.device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter()

        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens}: expected >= 1")
        b = len(prompts)
        longest = max(len(p) for p in prompts)
        if longest == 0:
            raise ValueError("fast decoder: an empty prompt (no tokens) cannot be continued")
        bucket = max(1, prompt_bucket)
        p_len = -(-longest // bucket) * bucket
        key = (b, p_len, max_new_tokens, sampling, tuple(eos_token_ids))
        st = self._shapes.get(key)
        if st is None:
            if len(self._shapes) >= _MAX_GRAPHS:
                self._shapes.pop(next(iter(self._shapes)))
            st = _Shape(self, b, p_len, max_new_tokens, eos_token_ids)
            self._shapes[key] = st
        pick = self._picker(sampling)
        ids = torch.full((b, p_len), pad_token_id, dtype=torch.long)
        pad = torch.empty(b, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, p_len - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
            pad[i] = p_len - len(p)
        ids, pad = ids.to(self.device), pad.to(self.device)

        was_training = self.lm.training
        self.lm.eval()   # dropout off in every module, also in what a graph records
        try:
            with torch.no_grad():
                t0 = clock()
                st.pad.copy_(pad)
                st.k.zero_()
                st.v.zero_()
                st.out.fill_(pad_token_id)
                first = torch.empty(b, dtype=torch.long, device=self.device)
                prefill_rows = max(1, prefill_tokens // p_len)
                for r0 in range(0, b, prefill_rows):
                    rows = slice(r0, min(b, r0 + prefill_rows))
                    first[rows] = pick(self._prefill(st, ids[rows], pad[rows], rows))
                st.out[:, 0] = first
                st.tok.copy_(first)
                st.done.copy_(torch.isin(first, st.eos))
                st.cur.fill_(p_len)
                t1 = clock()
                steps = max_new_tokens - 1
                ran = 0
                for t in range(steps):
                    klen = st.key_len(t, self.key_block)
                    if self.use_graphs:
                        if klen not in st.graphs:
                            st.graphs[klen] = self._capture(st, pick, pad_token_id, klen)
                        st.graphs[klen].replay()
                    else:
                        self._step(st, pick, pad_token_id, klen)
                    ran = t + 1
                    if ran % self.check_every == 0 and bool(st.done.all()):
                        break
                out = st.out.cpu()
                if timings is not None:
                    timings.update(prefill_s=t1 - t0, decode_s=clock() - t1, decode_steps=ran,
                                   graphs=len(st.graphs), cache_len=st.total, batch=b, prompt_len=p_len)
        finally:
            self.lm.train(was_training)
        eos_set = set(int(e) for e in eos_token_ids)
        result: list[list[int]] = []
        for row in out.tolist():
            cut = next((j for j, t in enumerate(row) if t in eos_set), None)
            result.append(row if cut is None else row[: cut + 1])
        return result

    def _capture(self, st: _Shape, pick: Any, pad_id: int, klen: int) -> Any:
        import torch

        # Warm up on a side stream (lazy inits, cuBLAS workspaces) on copies of the state, then capture; the
        # state buffers are restored afterwards, so capture leaves no trace in this call's output. Capturing
        # mid-generation (a new key block) is safe too: the cache slots the warm-up and capture write lie at and
        # beyond `cur` and are overwritten before they are read (each step writes its own slot first).
        saved = [t.clone() for t in (st.tok, st.cur, st.done, st.out)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step(st, pick, pad_id, klen)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._step(st, pick, pad_id, klen)
        for buf, old in zip((st.tok, st.cur, st.done, st.out), saved, strict=True):
            buf.copy_(old)
        return graph
