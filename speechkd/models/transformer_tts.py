"""Transformer-TTS (Li et al. 2019, "Neural Speech Synthesis with Transformer Network"): the
autoregressive teacher whose encoder-decoder attention gives FastSpeech its durations.

    tokens -> embedding -> conv prenet (3 x conv5, BN, ReLU) -> linear -> + alpha_e PE   (sec. 3.2, 3.3)
           -> N pre-norm Transformer encoder layers                                      (sec. 3.4)
    mel[t-1] -> 2-layer MLP prenet, dropout 0.5 always on -> linear -> + alpha_d PE       (sec. 3.3)
           -> N decoder layers (causal self-attn, encoder-decoder attn, FFN)             (sec. 3.5)
           -> linear to r frames of mel + r stop logits                                  (sec. 3.6)
    mel_after = mel_before + post-net(mel_before) (5 x conv5, BN, tanh)                  (sec. 3.6)

FFN: position-wise dense (``ff_kernel=1``, Li et al.) or, as FastSpeech's teacher ("the same
configuration as Transformer TTS ... except that we use 1D convolution network instead of
position-wise FFN", Ren et al. 2019 sec. 4.1), two 1-D convolutions of kernel ``ff_kernel``:
same-padded in the encoder, causal (left-padded) in the decoder so no step sees a later one.

Reduction factor r (Tacotron, sec. 3.3): each decoder step emits r frames, the decoder sees
every r-th frame (``mel[j*r - 1]`` at step j, zeros at step 0), so its attention spans
``ceil(T / r)`` steps; r = 3 aligns about twice as fast as r = 1 on the demo corpus. Targets
are zero-padded to a multiple of r and every loss is masked to the real frames, so no frame
is trimmed and the output length is exact (the stop token picks the frame inside a step).

Loss: L1 + L2 of the mel before and after the post-net, stop-token BCE with ``pos_weight``
(one positive frame per utterance), and the guided attention loss of Tachibana et al. 2018
(eq. 8): ``W[n, t] = 1 - exp(-(n/N - t/T)^2 / (2 g^2))``, ``L_att = sum_n A[t, n] W[n, t]``
(the attention mass off the diagonal band) averaged over decoder steps and the chosen layers and
heads -- N times the paper's cell mean, so that weight 1 means the same for any text length --
weighted by a factor that can halve every ``fade_half_life`` steps after ``fade_start``.

Inference: greedy autoregressive decoding with a key/value cache (each step attends to the
cached keys/values of earlier steps and to the encoder memory projected once; a conv FFN keeps
its last ``ff_kernel`` inputs), batched, with per-utterance stop detection and a maximum length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechkd.align.durations import select_head
from speechkd.config import field
from speechkd.models.layers import (ConvStack, DecoderKVCache, DecoderLayer, EncoderLayer, ScaledPositionalEncoding,
                                    causal_mask, dropout_always, length_mask)
from speechkd.models.speaker import build_speaker


@dataclass
class TransformerTTSConfig:
    """Transformer-TTS architecture, loss and inference settings."""

    d_model: int = field(256, help="model width (attention, feed-forward input/output, prenet outputs)")
    n_heads: int = field(2, help="attention heads of every attention layer")
    enc_layers: int = field(3, help="Transformer encoder layers")
    dec_layers: int = field(3, help="Transformer decoder layers")
    d_ff: int = field(1024, help="feed-forward inner width")
    ff_kernel: int = field(1, help="feed-forward kernel: 1 = position-wise dense (Li et al. 2019); odd k > 1 = "
                                   "two 1-D convs as FastSpeech's teacher (Ren et al. 2019, sec. 4.1), causal "
                                   "in the decoder")
    dropout: float = field(0.1, help="dropout of attention weights, residual branches and positional encodings")
    enc_prenet_layers: int = field(3, help="conv layers of the encoder prenet (kernel enc_prenet_kernel)")
    enc_prenet_kernel: int = field(5, help="kernel size of the encoder prenet convolutions")
    enc_prenet_dropout: float = field(0.2, help="dropout after each encoder prenet conv")
    dec_prenet_dim: int = field(256, help="width of the 2-layer decoder prenet MLP")
    dec_prenet_dropout: float = field(0.5, help="decoder prenet dropout, ALSO at inference (Tacotron 2)")
    postnet_layers: int = field(5, help="conv layers of the post-net (0: no post-net)")
    postnet_channels: int = field(256, help="channels of the post-net convolutions")
    postnet_kernel: int = field(5, help="kernel size of the post-net convolutions")
    postnet_dropout: float = field(0.5, help="dropout after each post-net conv")
    reduction_factor: int = field(3, help="frames per decoder step r (r=3 aligns ~2x faster than r=1)")
    stop_pos_weight: float = field(5.0, help="BCE pos_weight of the (single) positive stop frame")
    guided_attn_weight: float = field(1.0, help="weight of the guided attention loss (0: off)")
    guided_attn_sigma: float = field(0.2, help="width g of the guided attention band (Tachibana et al.)")
    guided_attn_layers: list[int] = field(default_factory=list,
                                          help="decoder layers (0-based) whose attention is guided; [] = all")
    guided_attn_heads: list[int] = field(default_factory=list, help="heads guided in those layers; [] = all")
    guided_attn_fade_start: int = field(-1, help="step after which the guided attention weight starts to "
                                                 "halve every guided_attn_fade_half_life steps; -1: never")
    guided_attn_fade_half_life: int = field(1000, help="steps per halving of the guided attention weight")
    max_frames_per_token: float = field(15.0, help="inference: stop after this many frames per input token "
                                                   "(such utterances are flagged as never stopping)")
    min_frames_per_token: float = field(1.0, help="inference: ignore stop tokens before this many frames per "
                                                  "input token (>= 1 so that every token can get a frame)")
    stop_threshold: float = field(0.5, help="inference: stop at the first frame whose stop probability >= this")

    def __post_init__(self) -> None:
        if self.reduction_factor < 1:
            raise ValueError(f"reduction_factor must be >= 1, got {self.reduction_factor}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.ff_kernel < 1 or self.ff_kernel % 2 == 0:
            raise ValueError(f"ff_kernel must be odd and >= 1, got {self.ff_kernel}")


def guided_attention_weights(text_lens: torch.Tensor, frame_lens: torch.Tensor, sigma: float,
                             max_text: int | None = None, max_frames: int | None = None) -> torch.Tensor:
    """``W [B, T, N]`` (frames x tokens, 0-based indices): 1 - exp(-(n/N - t/T)^2 / 2g^2)
    (Tachibana et al. 2018, eq. 8), 0 outside each utterance."""
    max_text = int(text_lens.max()) if max_text is None else max_text
    max_frames = int(frame_lens.max()) if max_frames is None else max_frames
    n = torch.arange(max_text, device=text_lens.device)[None, None, :] / text_lens[:, None, None]
    t = torch.arange(max_frames, device=text_lens.device)[None, :, None] / frame_lens[:, None, None]
    w = 1.0 - torch.exp(-((n - t) ** 2) / (2 * sigma ** 2))
    valid = length_mask(frame_lens, max_frames)[:, :, None] & length_mask(text_lens, max_text)[:, None, :]
    return w * valid


class TransformerTTS(nn.Module):
    """tokens -> mel; :meth:`forward` teacher-forced, :meth:`inference` free-running."""

    Config = TransformerTTSConfig
    batch_needs: tuple[str, ...] = ()  # learns its own alignment: tokens and mels only
    has_variances = False

    def __init__(self, cfg: TransformerTTSConfig, n_vocab: int, n_mels: int, n_speakers: int = 0,
                 spk_embed_dim: int = 0):
        super().__init__()
        self.cfg, self.n_mels, self.r = cfg, n_mels, cfg.reduction_factor
        d, p = cfg.d_model, cfg.dec_prenet_dim
        self.embed = nn.Embedding(n_vocab, d, padding_idx=0)
        self.enc_prenet = ConvStack([d] * (cfg.enc_prenet_layers + 1), cfg.enc_prenet_kernel,
                                    cfg.enc_prenet_dropout)
        self.enc_proj = nn.Linear(d, d)
        self.enc_pe = ScaledPositionalEncoding(d, cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.ff_kernel)
                                     for _ in range(cfg.enc_layers))
        self.enc_norm = nn.LayerNorm(d)
        # speaker vector added to the encoder memory the decoder attends to (speechkd.models.speaker)
        self.speaker = build_speaker(d, n_speakers, spk_embed_dim)
        self.dec_prenet = nn.ModuleList([nn.Linear(n_mels, p), nn.Linear(p, p)])
        self.dec_proj = nn.Linear(p, d)
        self.dec_pe = ScaledPositionalEncoding(d, cfg.dropout)
        self.decoder = nn.ModuleList(DecoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.ff_kernel)
                                     for _ in range(cfg.dec_layers))
        self.dec_norm = nn.LayerNorm(d)
        self.mel_out = nn.Linear(d, n_mels * self.r)
        self.stop_out = nn.Linear(d, self.r)
        self.postnet = (ConvStack([n_mels] + [cfg.postnet_channels] * (cfg.postnet_layers - 1) + [n_mels],
                                  cfg.postnet_kernel, cfg.postnet_dropout, last_activation=False,
                                  activation="tanh") if cfg.postnet_layers > 0 else None)

    def set_stats(self, stats) -> None:
        """Nothing to take: the model sees normalised mels only."""

    # ---- building blocks -------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, token_lens: torch.Tensor, spk: torch.Tensor | None = None,
               spk_emb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder memory ``[B, S, d]`` (with the speaker vector of a multi-speaker model) and its
        attention mask ``[B, 1, 1, S]``."""
        tmask = length_mask(token_lens, tokens.size(1))
        x = self.enc_proj(self.enc_prenet(self.embed(tokens), tmask))
        x = self.enc_pe(x)
        amask = tmask[:, None, None, :]
        for layer in self.encoder:
            x = layer(x, amask)
        x = self.enc_norm(x)
        if self.speaker is not None:
            x = self.speaker(x, tmask, spk, spk_emb)
        return x, amask

    def prenet_mlp(self, prev: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Previous frames ``[B, T, n_mels]`` -> ``[B, T, d]`` before the positional encoding."""
        x = prev
        for lin in self.dec_prenet:
            x = dropout_always(F.relu(lin(x)), self.cfg.dec_prenet_dropout, generator)
        return self.dec_proj(x)

    def prenet(self, prev: torch.Tensor, offset: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder input ``[B, T, d]`` from the previous frames ``[B, T, n_mels]`` (positions offset..)."""
        return self.dec_pe(self.prenet_mlp(prev, generator), offset)

    def run_decoder(self, x: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
                    self_mask: torch.Tensor | None, caches: list[dict] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Decoder layers; returns ``r`` frames per step ``[B, T*r, n_mels]``, stop logits ``[B, T*r]``
        and the encoder-decoder attention of each layer ``[B, H, T, S]``."""
        attns = []
        for i, layer in enumerate(self.decoder):
            x, w = layer(x, memory, self_mask, src_mask, None if caches is None else caches[i])
            attns.append(w)
        h = self.dec_norm(x)
        b, t = h.shape[:2]
        return self.mel_out(h).view(b, t * self.r, self.n_mels), self.stop_out(h).view(b, t * self.r), attns

    def apply_postnet(self, before: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        if self.postnet is None:
            return before
        return before + self.postnet(before, frame_mask)

    # ---- teacher forcing -------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, token_lens: torch.Tensor, mels: torch.Tensor, mel_lens: torch.Tensor,
                generator: torch.Generator | None = None, spk: torch.Tensor | None = None,
                spk_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Teacher-forced pass (``spk``/``spk_emb``: each utterance's voice, multi-speaker models). Frame outputs are ``[B, ceil(T/r)*r, ...]``; ``attns[l]`` is
        ``[B, H, ceil(T/r), S]``; ``reduced_lens`` the decoder steps of each utterance.
        ``generator`` seeds the always-on prenet dropout (repeatable alignments)."""
        r = self.r
        b, t, m = mels.shape
        steps = math.ceil(t / r)
        padded = F.pad(mels, (0, 0, 0, steps * r - t))
        # step j sees the last frame of step j-1 (Tacotron's reduction), step 0 a zero "go" frame
        dec_in = torch.cat([padded.new_zeros(b, 1, m), padded[:, r - 1::r][:, :-1]], dim=1)
        memory, src_mask = self.encode(tokens, token_lens, spk, spk_emb)
        before, stop, attns = self.run_decoder(self.prenet(dec_in, generator=generator), memory, src_mask,
                                               causal_mask(steps, mels.device)[None, None])
        fmask = length_mask(mel_lens, steps * r)
        after = self.apply_postnet(before, fmask)
        return {"mel_before": before, "mel_after": after, "stop_logits": stop, "attns": attns,
                "frame_mask": fmask, "reduced_lens": (mel_lens + r - 1) // r}

    def guided_attn_scale(self, step: int) -> float:
        c = self.cfg
        if c.guided_attn_fade_start < 0 or step <= c.guided_attn_fade_start:
            return c.guided_attn_weight
        return c.guided_attn_weight * 0.5 ** ((step - c.guided_attn_fade_start) / c.guided_attn_fade_half_life)

    def losses(self, batch: dict, out: dict, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (mel L1/L2 before+after post-net, stop BCE, guided attention)."""
        c, mels, mel_lens = self.cfg, batch["mels"], batch["mel_lens"]
        fmask = out["frame_mask"]
        target = F.pad(mels, (0, 0, 0, fmask.size(1) - mels.size(1)))
        fm = fmask[..., None].to(target.dtype)
        denom = fm.sum() * self.n_mels
        l1 = sum(((o - target).abs() * fm).sum() for o in (out["mel_before"], out["mel_after"])) / denom
        l2 = sum((((o - target) ** 2) * fm).sum() for o in (out["mel_before"], out["mel_after"])) / denom
        stop_target = torch.zeros_like(out["stop_logits"])
        stop_target[torch.arange(len(mel_lens)), mel_lens - 1] = 1.0
        bce = F.binary_cross_entropy_with_logits(out["stop_logits"], stop_target, reduction="none",
                                                 pos_weight=torch.tensor(c.stop_pos_weight, device=mels.device))
        bce = (bce * fmask).sum() / fmask.sum()
        logs = {"l1": l1, "l2": l2, "stop_bce": bce}
        total = l1 + l2 + bce
        scale = self.guided_attn_scale(step)
        if c.guided_attn_weight > 0:
            ga = self.guided_attention_loss(out["attns"], batch["token_lens"], out["reduced_lens"])
            logs.update(guided_attn=ga, guided_attn_scale=torch.tensor(scale))
            total = total + scale * ga
        logs["loss"] = total
        return total, logs

    def guided_attention_loss(self, attns: list[torch.Tensor], token_lens: torch.Tensor,
                              reduced_lens: torch.Tensor) -> torch.Tensor:
        """Attention mass off the diagonal band, sum_n A[t, n] W[t, n] (Tachibana et al. 2018, eq. 8),
        averaged over valid decoder steps, chosen heads and layers. The paper's mean over all N x T
        cells is this divided by N; per step, the loss lies in [0, 1] whatever the text length."""
        c = self.cfg
        layers = c.guided_attn_layers or list(range(len(attns)))
        heads = c.guided_attn_heads or list(range(c.n_heads))
        t_max, s_max = attns[0].shape[-2:]
        w = guided_attention_weights(token_lens, reduced_lens, c.guided_attn_sigma, s_max, t_max)[:, None]
        loss = sum((attns[i][:, heads] * w).sum() for i in layers)
        return loss / (reduced_lens.sum() * len(heads) * len(layers))

    # ---- alignment views -------------------------------------------------------------------
    @staticmethod
    def attention_per_utterance(attns: list[torch.Tensor], token_lens: torch.Tensor,
                                reduced_lens: torch.Tensor, b: int) -> list[np.ndarray]:
        """Utterance b's encoder-decoder attention: per layer ``[H, S, T_r]`` (tokens x decoder steps)."""
        s, t = int(token_lens[b]), int(reduced_lens[b])
        return [a[b, :, :t, :s].transpose(-1, -2).float().cpu().numpy() for a in attns]

    def validation_metrics(self, batch: dict, out: dict) -> dict[str, list[float]]:
        """Per-utterance focus rate of the best layer/head (FastSpeech, sec. 3.3)."""
        rates = []
        for b in range(len(batch["utts"])):
            per_layer = self.attention_per_utterance(out["attns"], batch["token_lens"], out["reduced_lens"], b)
            rates.append(float(select_head(per_layer)[2]))
        return {"focus_rate": rates}

    def plot_arrays(self, batch: dict, out: dict, b: int) -> dict[str, np.ndarray]:
        """Arrays of utterance b to plot: the best head's attention, target and predicted mels."""
        per_layer = self.attention_per_utterance(out["attns"], batch["token_lens"], out["reduced_lens"], b)
        layer, head, rate = select_head(per_layer)
        t = int(batch["mel_lens"][b])
        return {f"attention (layer {layer}, head {head}, focus rate {rate:.2f})": per_layer[layer][head],
                "mel target": batch["mels"][b, :t].float().cpu().numpy(),
                "mel predicted (teacher-forced)": out["mel_after"][b, :t].detach().float().cpu().numpy()}

    # ---- free running ----------------------------------------------------------------------
    @torch.inference_mode()
    def inference(self, tokens: torch.Tensor, token_lens: torch.Tensor, *, use_cache: bool = True,
                  generator: torch.Generator | None = None, max_frames_per_token: float | None = None,
                  stop_threshold: float | None = None, spk: torch.Tensor | None = None,
                  spk_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Greedy batched decoding (call in eval mode). Returns ``mel [B, T, n_mels]`` (after
        post-net, zero past each length), ``mel_lens``, ``stopped`` (False: hit the maximum length
        without a stop token), ``attns`` per layer ``[B, H, steps, S]`` and ``reduced_lens``.

        ``use_cache=True``: :class:`~speechkd.models.layers.DecoderKVCache` (preallocated
        keys/values written in place, memory projected once, fused q/k/v). ``use_cache=False``
        is the reference: every step reruns the decoder layers' own ``forward`` over the whole
        prefix with a causal mask, as in training. The prenet of a step is computed once in both
        modes, so a seeded ``generator`` gives both the same dropout masks and the same output.
        """
        if use_cache and self.training:
            raise RuntimeError("cached decoding applies no dropout: call model.eval() first")
        c, r, h = self.cfg, self.r, self.cfg.n_heads
        ratio = c.max_frames_per_token if max_frames_per_token is None else max_frames_per_token
        thr = c.stop_threshold if stop_threshold is None else stop_threshold
        b = tokens.size(0)
        memory, src_mask = self.encode(tokens, token_lens, spk, spk_emb)
        max_frames = torch.clamp(torch.ceil(token_lens.float() * ratio).long(), min=r)
        min_frames = torch.minimum(torch.ceil(token_lens.float() * c.min_frames_per_token).long(), max_frames)
        n_steps = math.ceil(int(max_frames.max()) / r)
        frame = torch.arange(n_steps * r, device=tokens.device)[None]
        # a stop may fire at frames in [min_frames - 1, max_frames - 1] of its utterance
        may_stop = (frame + 1 >= min_frames[:, None]) & (frame < max_frames[:, None])
        limit_steps = {(int(f) + r - 1) // r - 1 for f in max_frames.tolist()}  # an utterance hits its maximum
        before = memory.new_zeros(b, n_steps * r, self.n_mels)
        attns = [memory.new_zeros(b, h, n_steps, memory.size(1)) for _ in self.decoder]
        pos = self.dec_pe.table(n_steps)
        w_out = torch.cat([self.mel_out.weight, self.stop_out.weight])  # mel and stop heads: one matmul
        b_out = torch.cat([self.mel_out.bias, self.stop_out.bias])
        if use_cache:
            cache = DecoderKVCache(self.decoder, memory, src_mask, n_steps)
        else:
            inputs = memory.new_zeros(b, n_steps, c.d_model)
        lens, done = max_frames.clone(), torch.zeros(b, dtype=torch.bool, device=tokens.device)
        prev = memory.new_zeros(b, 1, self.n_mels)
        j = 0
        for j in range(n_steps):
            x = self.prenet_mlp(prev, generator) + pos[j]
            if use_cache:
                y, ws = cache.step(x, j)
                for a, w in zip(attns, ws):
                    a[:, :, j] = w
            else:
                inputs[:, j] = x[:, 0]
                y = inputs[:, : j + 1]
                for a, layer in zip(attns, self.decoder):
                    y, w = layer(y, memory, causal_mask(j + 1, y.device)[None, None], src_mask)
                    a[:, :, j] = w[:, :, -1]
                y = y[:, -1:]
            out = F.linear(self.dec_norm(y[:, 0]), w_out, b_out)  # [B, r*n_mels + r]
            frames = out[:, : r * self.n_mels].view(b, r, self.n_mels)
            before[:, j * r:(j + 1) * r] = frames
            fired = (torch.sigmoid(out[:, r * self.n_mels:]) >= thr) & may_stop[:, j * r:(j + 1) * r]  # [B, r]
            any_fired = bool(fired.any())
            if any_fired:
                new = fired.any(1) & ~done
                lens = torch.where(new, j * r + fired.int().argmax(1) + 1, lens)
                done |= new
            if (any_fired or j in limit_steps) and bool((lens <= (j + 1) * r).all()):  # all stopped or at max
                break
            prev = frames[:, -1:]
        steps = j + 1
        before = before[:, : steps * r]
        fmask = length_mask(lens, before.size(1))
        after = self.apply_postnet(before, fmask) * fmask[..., None]
        return {"mel": after[:, :int(lens.max())], "mel_lens": lens, "stopped": done,
                "attns": [a[:, :, :steps] for a in attns], "reduced_lens": (lens + r - 1) // r}


def expand_to_frames(attn: np.ndarray, r: int, num_frames: int) -> np.ndarray:
    """Attention over decoder steps ``[..., S, T_r]`` -> over mel frames ``[..., S, num_frames]``:
    step j produced frames j*r .. j*r+r-1, so its column is repeated r times and the tail cut."""
    return np.repeat(attn, r, axis=-1)[..., :num_frames]
