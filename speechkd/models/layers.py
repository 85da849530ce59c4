"""Building blocks shared by the acoustic models: masks, scaled positional encoding,
multi-head attention with a key/value cache, pre-norm Transformer layers, conv stacks.

Shapes: batch-first everywhere, ``[B, T, d]``. Masks are boolean with True on
real (non-padding) positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def length_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``[B, max_len]`` bool, True where ``t < lengths[b]``."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def sinusoid_table(n_pos: int, d: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...) (Vaswani et al. 2017, sec. 3.5)."""
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n_pos, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


class ScaledPositionalEncoding(nn.Module):
    """x + alpha * PE with a trainable scalar alpha (Li et al. 2019, eq. 3: the prenet outputs
    and the sinusoids live on different scales, so the model learns how much position to add)."""

    def __init__(self, d: int, dropout: float = 0.0, max_len: int = 5000):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("pe", sinusoid_table(max_len, d), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x [B, T, d]`` holds positions ``offset .. offset+T-1``."""
        end = offset + x.size(1)
        if end > self.pe.size(0):  # grow the table instead of failing on long inputs
            self.pe = sinusoid_table(2 * end, self.pe.size(1)).to(self.pe)
        return self.dropout(x + self.alpha * self.pe[offset:end])

    def table(self, n: int) -> torch.Tensor:
        """``alpha * PE[:n]`` ``[n, d]``: what :meth:`forward` adds at positions 0..n-1 (dropout aside)."""
        if n > self.pe.size(0):
            self.pe = sinusoid_table(2 * n, self.pe.size(1)).to(self.pe)
        return self.alpha * self.pe[:n]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over H heads (Vaswani et al. 2017, eq. 1) that can return
    its weights per head and keep a key/value cache for incremental decoding."""

    def __init__(self, d: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_model {d} is not divisible by n_heads {n_heads}")
        self.h, self.dk = n_heads, d // n_heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, H, T, dk]
        return x.view(x.size(0), x.size(1), self.h, self.dk).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``memory`` ([B, H, S, dk] each), computed once per utterance."""
        return self._split(self.k(memory)), self._split(self.v(memory))

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: dict | None = None, static_kv: bool = False,
                need_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``query [B, Tq, d]`` to ``key`` (= the query when None).

        mask: broadcastable to ``[B, H, Tq, Tk]``, True where attending is allowed.
        cache: a dict kept by the caller. ``static_kv``: the keys are an encoder memory,
        projected once and reused; otherwise (self-attention) the new keys/values are
        appended to those of earlier steps. Returns the output and the weights [B, H, Tq, Tk]
        (None with ``need_weights=False``: then the same eq. 1 runs in torch's fused
        ``scaled_dot_product_attention``, which never materialises the weights).
        """
        q = self._split(self.q(query))
        if static_kv and cache is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self.project_kv(query if key is None else key)
            if cache is not None and not static_kv and "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            if cache is not None:
                cache["k"], cache["v"] = k, v
        if not need_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                 dropout_p=self.dropout.p if self.training else 0.0)
            return self.o(out.transpose(1, 2).reshape(query.size(0), query.size(1), self.h * self.dk)), None
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dk)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        out = torch.matmul(self.dropout(weights), v)
        out = out.transpose(1, 2).reshape(query.size(0), query.size(1), self.h * self.dk)
        return self.o(out), weights


class FeedForward(nn.Sequential):
    """Position-wise feed-forward of the Transformer (Vaswani et al. 2017, eq. 2)."""

    def __init__(self, d: int, d_ff: int, dropout: float):
        super().__init__(nn.Linear(d, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Position-wise: padding cannot leak, so ``mask`` (as :class:`ConvFFN`'s) is not needed."""
        return super().forward(x)


class ConvFFN(nn.Module):
    """Feed-forward as two 1-D convolutions: conv1d(d -> d_ff, k) -> ReLU -> dropout -> conv1d(d_ff -> d, k)
    (FastSpeech sec. 3.1: neighbouring phonemes and mel frames are closely related; its
    autoregressive teacher uses the same in place of the position-wise FFN, sec. 4.1).

    ``causal=True`` pads ``k - 1`` frames on the left only, so frame t sees frames <= t (an
    autoregressive decoder); otherwise ``k // 2`` on both sides. ``mask [B, T]`` (True on real
    positions) zeroes the padding before each conv, so a padded utterance equals the unpadded one.
    """

    def __init__(self, d: int, d_filter: int, kernel: int, dropout: float, causal: bool = False):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"feed-forward conv kernel {kernel} must be odd (same-length convolutions)")
        self.kernel, self.causal = kernel, causal
        pad = 0 if causal else kernel // 2
        self.c1 = nn.Conv1d(d, d_filter, kernel, padding=pad)
        self.c2 = nn.Conv1d(d_filter, d, kernel, padding=pad)
        self.drop = nn.Dropout(dropout)

    def _conv(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        return conv(F.pad(x, (self.kernel - 1, 0)) if self.causal else x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, T, d]`` -> ``[B, T, d]``."""
        h = x.transpose(1, 2)
        if mask is None:
            return self._conv(self.c2, self.drop(F.relu(self._conv(self.c1, h)))).transpose(1, 2)
        m = mask[:, None, :].to(x.dtype)
        h = self.drop(F.relu(self._conv(self.c1, h * m)))
        return (self._conv(self.c2, h * m) * m).transpose(1, 2)


def feed_forward(d: int, d_ff: int, kernel: int, dropout: float, causal: bool) -> nn.Module:
    """Kernel 1: the position-wise dense FFN (Li et al. 2019); > 1: :class:`ConvFFN`."""
    return FeedForward(d, d_ff, dropout) if kernel == 1 else ConvFFN(d, d_ff, kernel, dropout, causal)


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward block (pre-norm trains stably without long warm-up)."""

    def __init__(self, d: int, n_heads: int, d_ff: int, dropout: float, ff_kernel: int = 1):
        super().__init__()
        self.attn = MultiHeadAttention(d, n_heads, dropout)
        self.ff = feed_forward(d, d_ff, ff_kernel, dropout, causal=False)
        self.n1, self.n2, self.drop = nn.LayerNorm(d), nn.LayerNorm(d), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask [B, 1, 1, S]``: True on real tokens."""
        y = self.n1(x)
        x = x + self.drop(self.attn(y, y, mask, need_weights=False)[0])
        return x + self.drop(self.ff(self.n2(x), mask[:, 0, 0, :]))


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, encoder-decoder attention (weights returned), feed-forward."""

    def __init__(self, d: int, n_heads: int, d_ff: int, dropout: float, ff_kernel: int = 1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d, n_heads, dropout)
        self.src_attn = MultiHeadAttention(d, n_heads, dropout)
        self.ff = feed_forward(d, d_ff, ff_kernel, dropout, causal=True)  # a conv FFN sees no future frame
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None,
                src_mask: torch.Tensor, cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cache: ``{"self": {...}, "src": {...}}`` for incremental decoding (then x is one new step)."""
        y = self.n1(x)
        x = x + self.drop(self.self_attn(y, None, self_mask, cache=None if cache is None else cache["self"],
                                              need_weights=False)[0])
        out, w = self.src_attn(self.n2(x), memory, src_mask, cache=None if cache is None else cache["src"],
                               static_kv=True)
        x = x + self.drop(out)
        return x + self.drop(self.ff(self.n3(x))), w


class DecoderKVCache:
    """Incremental decoding through a stack of :class:`DecoderLayer` s, one step at a time.

    Built once per batch of utterances: every layer's self-attention keys/values go into
    buffers preallocated for ``max_steps`` and written in place (no growth by concatenation),
    the encoder memory is projected to keys/values once, q/k/v are one fused matmul with the
    1/sqrt(dk) scale folded into the query rows, the padding mask is an additive bias built
    once, and the weights are unpacked from the modules once, so a step is ~20 tensor ops per
    layer and no module calls. Dropout is not applied (inference, eval mode). The result equals
    ``DecoderLayer.forward`` over the whole prefix with a causal mask, up to float rounding.
    """

    def __init__(self, layers: "list[DecoderLayer] | nn.ModuleList", memory: torch.Tensor,
                 src_mask: torch.Tensor | None, max_steps: int):
        b, s, d = memory.shape
        self.b, self.d = b, d
        self.layers = []
        for layer in layers:
            sa, ca = layer.self_attn, layer.src_attn
            h, dk = sa.h, sa.dk
            scale = 1.0 / math.sqrt(dk)
            w_qkv = torch.cat([sa.q.weight * scale, sa.k.weight, sa.v.weight])
            b_qkv = torch.cat([sa.q.bias * scale, sa.k.bias, sa.v.bias])
            mk, mv = ca.project_kv(memory)  # [B, H, S, dk]
            mem_kt = mk.reshape(b * h, s, dk).transpose(1, 2).contiguous()  # [B*H, dk, S]
            mem_v = mv.reshape(b * h, s, dk).contiguous()
            bias = None
            if src_mask is not None and not bool(src_mask.all()):
                m = src_mask.reshape(b, 1, 1, s).expand(b, h, 1, s).reshape(b * h, 1, s)
                bias = torch.zeros(m.shape, dtype=memory.dtype, device=memory.device)
                bias.masked_fill_(~m, torch.finfo(memory.dtype).min)
            k_buf = memory.new_empty(b * h, max_steps, dk)
            v_buf = memory.new_empty(b * h, max_steps, dk)
            norms = [(n.normalized_shape, n.weight, n.bias, n.eps) for n in (layer.n1, layer.n2, layer.n3)]
            self.layers.append((h, dk, norms, w_qkv, b_qkv, sa.o.weight, sa.o.bias, k_buf, v_buf,
                                ca.q.weight * scale, ca.q.bias * scale, mem_kt, mem_v, bias, ca.o.weight, ca.o.bias,
                                self._ff(layer.ff, memory, max_steps)))

    @staticmethod
    def _ff(ff: nn.Module, memory: torch.Tensor, max_steps: int) -> tuple:
        """Dense FFN: its weights. Causal conv FFN (kernel k): weights flattened to act on the
        last k inputs concatenated, and zero-fronted buffers of its inputs and hidden units
        (a step writes row j + k - 1 and reads rows j .. j + k - 1)."""
        if isinstance(ff, FeedForward):
            return 1, ff[0].weight, ff[0].bias, ff[3].weight, ff[3].bias, None, None
        k, b = ff.kernel, memory.size(0)
        flat = [c.weight.permute(0, 2, 1).reshape(c.out_channels, k * c.in_channels) for c in (ff.c1, ff.c2)]
        u_buf = memory.new_zeros(b, max_steps + k - 1, ff.c1.in_channels)
        h_buf = memory.new_zeros(b, max_steps + k - 1, ff.c1.out_channels)
        return k, flat[0], ff.c1.bias, flat[1], ff.c2.bias, u_buf, h_buf

    def step(self, x: torch.Tensor, j: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Decoder step ``j`` (0-based) for input ``x [B, 1, d]``: the last layer's output
        ``[B, 1, d]`` and each layer's encoder-decoder attention ``[B, H, S]``."""
        b, d = self.b, self.d
        weights = []
        for (h, dk, (n1, n2, n3), w_qkv, b_qkv, w_o, b_o, k_buf, v_buf, w_q2, b_q2, mem_kt, mem_v, bias,
             w_o2, b_o2, (k, w_f1, b_f1, w_f2, b_f2, u_buf, h_buf)) in self.layers:
            qkv = F.linear(F.layer_norm(x, *n1), w_qkv, b_qkv).view(b, 3, h * dk)
            k_buf[:, j] = qkv[:, 1].reshape(b * h, dk)
            v_buf[:, j] = qkv[:, 2].reshape(b * h, dk)
            q = qkv[:, 0].reshape(b * h, 1, dk)
            # causal self-attention: the cache holds exactly steps 0..j (scale folded into q)
            a = torch.bmm(torch.softmax(torch.bmm(q, k_buf[:, : j + 1].transpose(1, 2)), dim=-1), v_buf[:, : j + 1])
            x = x + F.linear(a.reshape(b, 1, d), w_o, b_o)
            q = F.linear(F.layer_norm(x, *n2), w_q2, b_q2).view(b * h, 1, dk)
            scores = torch.bmm(q, mem_kt) if bias is None else torch.baddbmm(bias, q, mem_kt)
            w = torch.softmax(scores, dim=-1)  # [B*H, 1, S]
            x = x + F.linear(torch.bmm(w, mem_v).reshape(b, 1, d), w_o2, b_o2)
            u = F.layer_norm(x, *n3)
            if k == 1:
                x = x + F.linear(F.relu(F.linear(u, w_f1, b_f1)), w_f2, b_f2)
            else:  # causal conv FFN on the last k steps
                u_buf[:, j + k - 1] = u[:, 0]
                h_buf[:, j + k - 1] = F.relu(F.linear(u_buf[:, j:j + k].reshape(b, -1), w_f1, b_f1))
                x = x + F.linear(h_buf[:, j:j + k].reshape(b, -1), w_f2, b_f2)[:, None]
            weights.append(w.view(b, h, -1))
        return x, weights


class ConvStack(nn.Module):
    """Conv1d -> BatchNorm -> activation -> dropout, repeated; the Tacotron 2 encoder prenet and
    post-net shape (Shen et al. 2018, sec. 2.2/2.3). Input and output ``[B, T, C]``."""

    def __init__(self, channels: list[int], kernel: int, dropout: float, last_activation: bool = True,
                 activation: str = "relu"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        self.blocks = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == len(channels) - 2
            layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                                       nn.BatchNorm1d(c_out)]
            if not last or last_activation:
                layers.append(act())
            layers.append(nn.Dropout(dropout))
            self.blocks.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Padding is zeroed before every conv, so a padded utterance equals the unpadded one."""
        m = None if mask is None else mask[:, None, :].to(x.dtype)
        x = x.transpose(1, 2)
        for block in self.blocks:
            x = block(x if m is None else x * m)
        return (x if m is None else x * m).transpose(1, 2)


def dropout_always(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dropout that stays on at inference (Tacotron 2 decoder prenet, sec. 2.3: the noise is what
    lets the autoregressive decoder recover from its own errors). ``generator`` makes it repeatable."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def causal_mask(t: int, device: torch.device) -> torch.Tensor:
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()
