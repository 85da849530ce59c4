"""FastSpeech (Ren et al. 2019, "FastSpeech: Fast, Robust and Controllable Text to Speech"): the
non-autoregressive student distilled from the autoregressive Transformer-TTS teacher.

    tokens -> embedding + PE -> N FFT blocks (encoder)                       (sec. 3.1, Fig. 1a/b)
           -> duration predictor (on the encoder output, log domain)         (sec. 3.3, Fig. 1d)
           -> length regulator: token i repeated d_i times                   (sec. 3.2, Fig. 1c)
           -> + PE -> N FFT blocks (decoder) -> linear to n_mels [-> post-net]

FFT block: multi-head self-attention and a 2-layer 1-D convolution FFN (kernel 3, ReLU), each a
residual branch. The paper normalises after each residual (post-norm); here the norm comes
before each branch (pre-norm, as the teacher's layers), which trains stably with a short warm-up
and no long schedule, and a final LayerNorm closes each stack.

Duration predictor: 2 x (conv1d k=3, ReLU, LayerNorm, dropout) + linear, trained with MSE on
``log(d + 1)`` (sec. 3.3: "predict the length in the logarithmic domain, which makes them more
Gaussian and easier to train"); at inference ``d = round((exp(p) - 1) / speed)``.

Length regulator speed (sec. 3.2, the paper's alpha is a *length* factor, alpha = 1 / speed here):
``speed=2.0`` is twice as fast, so predicted durations are divided by 2 before rounding; every
real token keeps at least 1 frame (so very high speeds saturate at one frame per token), and at
most ``max_token_frames``. Training uses the teacher's durations, so the output has exactly the
target's length. Loss: mel L1 or MSE (``mel_loss``; the paper used MSE, FastSpeech 2 MAE) before
and after the optional post-net + duration MSE.

Every student shares :class:`speechkd.models.fastspeech2.FastSpeech2`'s interface:
``forward(tokens, token_lens, mels, mel_lens, durations=..., ...)`` for training,
:meth:`FastSpeech.encode_condition` (encoder + variance adaptor + length regulator, reused as the
condition of the diffusion model) and :meth:`FastSpeech.inference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechkd.config import field
from speechkd.models.layers import ConvFFN, ConvStack, MultiHeadAttention, ScaledPositionalEncoding, length_mask
from speechkd.models.speaker import build_speaker


@dataclass
class FastSpeechConfig:
    """FastSpeech architecture (paper preset: 6+6 FFT blocks, hidden 384, 2 heads, conv 1536 k=3)."""

    d_model: int = field(256, help="hidden size of the FFT blocks (paper: 384)")
    n_heads: int = field(2, help="self-attention heads (paper: 2)")
    enc_layers: int = field(4, help="FFT blocks on the token side (paper: 6)")
    dec_layers: int = field(4, ge=0, help="FFT blocks on the frame side (paper: 6; 0 in the diffusion condition)")
    conv_filter: int = field(1024, help="inner channels of the conv FFN of an FFT block (paper: 1536)")
    conv_kernel: int = field(3, help="kernel size of both FFN convolutions (paper: 3)")
    dropout: float = field(0.1, help="dropout of attention weights and residual branches")
    predictor_channels: int = field(256, help="channels of the duration (and pitch/energy) predictors")
    predictor_kernel: int = field(3, help="kernel size of the predictor convolutions (paper: 3)")
    predictor_dropout: float = field(0.5, help="dropout after each predictor conv (FastSpeech 2: 0.5)")
    duration_loss_weight: float = field(1.0, help="weight of the duration MSE on log(d + 1)")
    mel_loss: Literal["l1", "mse"] = field("l1", help="mel loss: l1 (FastSpeech 2) or mse (FastSpeech)")
    postnet_layers: int = field(0, help="conv layers of a Tacotron 2 post-net (0: none, as in the paper)")
    postnet_channels: int = field(256, help="channels of the post-net convolutions")
    postnet_kernel: int = field(5, help="kernel size of the post-net convolutions")
    postnet_dropout: float = field(0.5, help="dropout after each post-net conv")
    max_token_frames: int = field(100, help="inference: at most this many frames per token")

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.conv_kernel % 2 == 0 or self.predictor_kernel % 2 == 0:
            raise ValueError("conv_kernel and predictor_kernel must be odd (same-length convolutions)")


class FFTBlock(nn.Module):
    """Feed-forward Transformer block (Fig. 1b): self-attention + conv FFN, pre-norm residuals."""

    def __init__(self, d: int, n_heads: int, d_filter: int, kernel: int, dropout: float):
        super().__init__()
        self.attn = MultiHeadAttention(d, n_heads, dropout)
        self.ffn = ConvFFN(d, d_filter, kernel, dropout)
        self.n1, self.n2, self.drop = nn.LayerNorm(d), nn.LayerNorm(d), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, T, d]``, ``mask [B, T]`` True on real positions; padding stays zero."""
        y = self.n1(x)
        x = x + self.drop(self.attn(y, y, mask[:, None, None, :], need_weights=False)[0])
        x = x + self.drop(self.ffn(self.n2(x), mask))
        return x * mask[..., None].to(x.dtype)


class FFTStack(nn.Module):
    """Positional encoding + N FFT blocks + final LayerNorm (encoder or decoder of Fig. 1a)."""

    def __init__(self, n: int, d: int, n_heads: int, d_filter: int, kernel: int, dropout: float):
        super().__init__()
        self.pe = ScaledPositionalEncoding(d, dropout)
        self.blocks = nn.ModuleList(FFTBlock(d, n_heads, d_filter, kernel, dropout) for _ in range(n))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.pe(x)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x) * mask[..., None].to(x.dtype)


class VariancePredictor(nn.Module):
    """2 x (conv1d, ReLU, LayerNorm, dropout) + linear -> one scalar per position (FastSpeech
    sec. 3.3 duration predictor; FastSpeech 2 uses the same net for pitch and energy)."""

    def __init__(self, d: int, channels: int, kernel: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(d, channels, kernel, padding=kernel // 2),
                                    nn.Conv1d(channels, channels, kernel, padding=kernel // 2)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels), nn.LayerNorm(channels)])
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, S, d]`` -> ``[B, S]``, zero on padding."""
        m = mask[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms):
            x = self.drop(norm(F.relu(conv((x * m).transpose(1, 2)).transpose(1, 2))))
        return self.out(x).squeeze(-1) * mask.to(x.dtype)


def length_regulate(h: torch.Tensor, durations: torch.Tensor, max_len: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Length regulator (FastSpeech sec. 3.2): token s of ``h [B, S, d]`` repeated ``durations[b, s]``
    times. Returns ``[B, T, d]`` with ``T = max_b sum_s d[b, s]`` (or ``max_len``), zero past each
    utterance's length, and the lengths ``[B]``. Frame t belongs to the token whose cumulative
    duration first exceeds t."""
    d = durations.long().clamp(min=0)
    lens = d.sum(1)
    t_max = int(lens.max()) if max_len is None else max_len
    ends = d.cumsum(1)  # [B, S]
    frames = torch.arange(t_max, device=h.device).expand(h.size(0), t_max).contiguous()
    idx = torch.searchsorted(ends, frames, right=True).clamp(max=h.size(1) - 1)  # [B, T]
    out = torch.gather(h, 1, idx[..., None].expand(-1, -1, h.size(2)))
    return out * length_mask(lens, t_max)[..., None].to(h.dtype), lens


def durations_from_log(log_d: torch.Tensor, token_mask: torch.Tensor, speed: float = 1.0,
                       max_frames: int = 100) -> torch.Tensor:
    """Integer durations from the predictor's ``log(d + 1)`` (sec. 3.3): ``round((exp(p) - 1) / speed)``,
    at least 1 and at most ``max_frames`` per real token, 0 on padding. ``speed`` 2.0 = twice as fast."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    d = torch.round((torch.exp(log_d.float()) - 1.0).clamp(min=0.0) / speed).long()
    return d.clamp(1, max_frames) * token_mask.long()


class FastSpeech(nn.Module):
    """FastSpeech: tokens + durations -> mel; :meth:`inference` predicts the durations."""

    Config = FastSpeechConfig
    # batch entries TTSTask passes to forward() besides tokens/mels (see speechkd.train.data)
    batch_needs: tuple[str, ...] = ("durations",)
    has_variances = False  # pitch/energy predictors (FastSpeech 2): pitch_scale / energy_scale apply

    def __init__(self, cfg: FastSpeechConfig, n_vocab: int, n_mels: int, n_speakers: int = 0,
                 spk_embed_dim: int = 0):
        super().__init__()
        self.cfg, self.n_mels = cfg, n_mels
        d = cfg.d_model
        self.embed = nn.Embedding(n_vocab, d, padding_idx=0)
        self.encoder = FFTStack(cfg.enc_layers, d, cfg.n_heads, cfg.conv_filter, cfg.conv_kernel, cfg.dropout)
        # speaker vector added to the encoder output, before the variance adaptor (speechkd.models.speaker)
        self.speaker = build_speaker(d, n_speakers, spk_embed_dim)
        self.duration_predictor = VariancePredictor(d, cfg.predictor_channels, cfg.predictor_kernel,
                                                    cfg.predictor_dropout)
        self.decoder = FFTStack(cfg.dec_layers, d, cfg.n_heads, cfg.conv_filter, cfg.conv_kernel, cfg.dropout)
        self.mel_out = nn.Linear(d, n_mels)
        self.postnet = (ConvStack([n_mels] + [cfg.postnet_channels] * (cfg.postnet_layers - 1) + [n_mels],
                                  cfg.postnet_kernel, cfg.postnet_dropout, last_activation=False,
                                  activation="tanh") if cfg.postnet_layers > 0 else None)

    def set_stats(self, stats) -> None:
        """Nothing to take: durations are counts (FastSpeech 2 takes pitch/energy statistics)."""

    # ---- encoder + variance adaptor ---------------------------------------------------------
    def encode(self, tokens: torch.Tensor, token_lens: torch.Tensor, spk: torch.Tensor | None = None,
               spk_emb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output ``[B, S, d]`` (with the speaker vector of a multi-speaker model) and the
        token mask ``[B, S]``."""
        tmask = length_mask(token_lens, tokens.size(1))
        h = self.encoder(self.embed(tokens), tmask)
        if self.speaker is not None:
            h = self.speaker(h, tmask, spk, spk_emb)
        return h, tmask

    def adapt(self, h: torch.Tensor, tmask: torch.Tensor, durations: torch.Tensor | None, speed: float,
              spk: torch.Tensor | None = None, **variances) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Variance adaptor at token level: FastSpeech has only the duration predictor.
        Returns the (unchanged) token hidden, the durations used and the predictions."""
        log_d = self.duration_predictor(h, tmask)
        if durations is None:
            durations = durations_from_log(log_d, tmask, speed, self.cfg.max_token_frames)
        return h, durations.long() * tmask.long(), {"log_durations": log_d}

    def encode_condition(self, tokens: torch.Tensor, token_lens: torch.Tensor, durations: torch.Tensor | None = None,
                         pitch: torch.Tensor | None = None, energy: torch.Tensor | None = None, *,
                         speed: float = 1.0, pitch_scale: float = 1.0, energy_scale: float = 1.0,
                         spk: torch.Tensor | None = None, spk_emb: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder + variance adaptor + length regulator: frame-level hidden ``[B, T, d]`` (zero past
        each length), ``mel_lens [B]`` and the predictions: ``log_durations [B, S]`` (log(d+1)),
        ``durations [B, S]`` (those used), ``token_mask [B, S]``; FastSpeech 2 adds ``pitch``/``energy``
        (normalised predictions) and ``pitch_used``/``energy_used``.

        ``durations`` given (training, or the diffusion teacher on ground-truth lengths) are used
        as is; otherwise predicted and divided by ``speed``. ``pitch``/``energy`` are raw token-level
        targets (log-F0 in log-Hz, linear energy) used instead of the predictions (FastSpeech 2).
        ``spk``/``spk_emb``: each utterance's voice (table rows, external embeddings) in a
        multi-speaker model.
        """
        h, tmask = self.encode(tokens, token_lens, spk, spk_emb)
        h, dur, pred = self.adapt(h, tmask, durations, speed, spk=spk, pitch=pitch, energy=energy,
                                  pitch_scale=pitch_scale, energy_scale=energy_scale)
        frames, mel_lens = length_regulate(h, dur)
        return frames, mel_lens, {**pred, "durations": dur, "token_mask": tmask}

    def decode(self, frames: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mel before and after the post-net ``[B, T, n_mels]`` (zero past each length), frame mask."""
        fmask = length_mask(mel_lens, frames.size(1))
        before = self.mel_out(self.decoder(frames, fmask)) * fmask[..., None].to(frames.dtype)
        after = before if self.postnet is None else before + self.postnet(before, fmask)
        return before, after * fmask[..., None].to(frames.dtype), fmask

    # ---- training ------------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, token_lens: torch.Tensor, mels: torch.Tensor, mel_lens: torch.Tensor,
                durations: torch.Tensor, pitch: torch.Tensor | None = None, energy: torch.Tensor | None = None,
                spk: torch.Tensor | None = None, spk_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Pass with the target durations (which must sum to ``mel_lens``): mel outputs have
        exactly the targets' frames."""
        if not torch.equal(durations.long().sum(1).cpu(), mel_lens.long().cpu()):
            raise ValueError(f"durations sum to {durations.sum(1).tolist()}, targets have {mel_lens.tolist()} frames")
        frames, lens, pred = self.encode_condition(tokens, token_lens, durations, pitch, energy, spk=spk,
                                                   spk_emb=spk_emb)
        before, after, fmask = self.decode(frames, lens)
        return {"mel_before": before, "mel_after": after, "frame_mask": fmask, **pred}

    def variance_losses(self, batch: dict, out: dict) -> dict[str, torch.Tensor]:
        """Duration MSE on log(d + 1) over real tokens (FastSpeech sec. 3.3)."""
        tm = out["token_mask"].to(out["log_durations"].dtype)
        target = torch.log(batch["durations"].to(tm.dtype) + 1.0)
        return {"duration": (((out["log_durations"] - target) ** 2) * tm).sum() / tm.sum()}

    def losses(self, batch: dict, out: dict, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mel loss (before and after the post-net) + weighted variance losses."""
        fm = out["frame_mask"][..., None].to(out["mel_before"].dtype)
        target = batch["mels"][:, : fm.size(1)]
        denom = fm.sum() * self.n_mels
        outs = (out["mel_before"],) if self.postnet is None else (out["mel_before"], out["mel_after"])
        err = (lambda o: (o - target).abs()) if self.cfg.mel_loss == "l1" else (lambda o: (o - target) ** 2)
        mel = sum((err(o) * fm).sum() for o in outs) / denom
        logs = {"mel": mel, **self.variance_losses(batch, out)}
        total = mel + sum(self.loss_weight(k) * v for k, v in logs.items() if k != "mel")
        logs["loss"] = total
        return total, logs

    def loss_weight(self, name: str) -> float:
        return {"duration": self.cfg.duration_loss_weight}[name]

    # ---- validation ----------------------------------------------------------------------------
    def validation_metrics(self, batch: dict, out: dict) -> dict[str, list[float]]:
        """Per dev utterance: mel L1 (model units, target durations) and the mean absolute error of
        the predicted durations in frames (``dur_mae``)."""
        pred = durations_from_log(out["log_durations"].detach(), out["token_mask"], 1.0, self.cfg.max_token_frames)
        mel_l1, dur_mae = [], []
        for b in range(len(batch["utts"])):
            s, t = int(batch["token_lens"][b]), int(batch["mel_lens"][b])
            mel_l1.append(float((out["mel_after"][b, :t].detach() - batch["mels"][b, :t]).abs().mean()))
            dur_mae.append(float((pred[b, :s] - batch["durations"][b, :s]).abs().float().mean()))
        return {"mel_l1": mel_l1, "dur_mae": dur_mae}

    def plot_arrays(self, batch: dict, out: dict, b: int) -> dict[str, np.ndarray]:
        """Target and predicted mels of utterance b, and its target vs predicted durations."""
        s, t = int(batch["token_lens"][b]), int(batch["mel_lens"][b])
        pred = durations_from_log(out["log_durations"][b:b + 1, :s].detach(), out["token_mask"][b:b + 1, :s])[0]
        return {"mel target": batch["mels"][b, :t].float().cpu().numpy(),
                "mel predicted (target durations)": out["mel_after"][b, :t].detach().float().cpu().numpy(),
                "durations: target (row 0), predicted (row 1), frames per token":
                    np.stack([batch["durations"][b, :s].cpu().numpy(), pred.cpu().numpy()]).astype(np.float32)}

    # ---- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def inference(self, tokens: torch.Tensor, token_lens: torch.Tensor, *, speed: float = 1.0,
                  pitch_scale: float = 1.0, energy_scale: float = 1.0, durations: torch.Tensor | None = None,
                  pitch: torch.Tensor | None = None, energy: torch.Tensor | None = None,
                  spk: torch.Tensor | None = None, spk_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Text -> mel in one pass. Returns ``mel [B, T, n_mels]`` (normalised like the training
        targets, zero past each length), ``mel_lens [B]``, ``durations [B, S]`` (frames per token,
        0 on padding) and the variance predictions. ``speed`` 2.0 = twice as fast (durations / 2,
        >= 1 frame per token); ``pitch_scale``/``energy_scale`` act on FastSpeech 2's pitch/energy
        (FastSpeech has none: they must stay 1.0). Given ``durations``/``pitch``/``energy``
        replace the predictions (``speed`` then does not apply to the durations). ``spk``/``spk_emb``:
        the voice of each utterance (multi-speaker models)."""
        if (pitch_scale != 1.0 or energy_scale != 1.0) and not self.has_variances:
            raise ValueError(f"{type(self).__name__} predicts no pitch/energy: pitch_scale and energy_scale must be 1")
        frames, lens, pred = self.encode_condition(tokens, token_lens, durations, pitch, energy, speed=speed,
                                                   pitch_scale=pitch_scale, energy_scale=energy_scale, spk=spk,
                                                   spk_emb=spk_emb)
        _, mel, _ = self.decode(frames, lens)
        return {"mel": mel, "mel_lens": lens, **pred}
