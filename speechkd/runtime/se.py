"""Speech enhancement from an exported SE dir (``speechkd export`` of an SE student) on
onnxruntime and numpy, offline and frame by frame, without torch.

    DIR/manifest.json   format ``speechkd-se-onnx``: the model, its sample rate, the STFT settings
                        (n_fft, hop, Hann window, centred), the state tensors, the export check
    DIR/mask.onnx       mag [B, T, F] (|Y/s|^0.3), state... -> mask [B, T, F], state..._out

The mask models (:class:`speechkd.enhance.stft.MaskEnhancer`) see the power-law compressed
magnitude of the noisy STFT divided by an input level s, and the enhanced signal is the inverse
STFT of the mask times the noisy spectrum (noisy phase). Offline, s is the RMS of the whole
utterance (as in PyTorch). The graph carries the model's causal state (the causal convolutions'
past frames, the GRU state) between calls, so the same graph runs a whole utterance (zero state)
or one hop at a time (:class:`FrameStream`).

Streaming, the STFT framing and overlap-add are those of ``torch.stft`` / ``torch.istft`` with
``center=True`` (reflect padding at both ends), reproduced exactly: a sample is final once the
last frame covering it has been added, so the algorithmic latency is one STFT window (n_fft
samples) plus the hop being filled. The utterance RMS is not known while streaming: a stream takes
``level`` (a fixed input RMS; with the utterance's, it equals the offline output) or, by default,
the RMS of the input received so far at each frame (causal; it differs from offline by the change
of level the model sees).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import numpy as np

from speechkd.errors import AudioError, SpeechkdError
from speechkd.runtime.bundle import load_manifest_json
from speechkd.runtime.dsp import istft, periodic_window, stft
from speechkd.runtime.synth import _session, require_onnxruntime

FORMAT = "speechkd-se-onnx"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MASK = "mask.onnx"
RMS_FLOOR = 1e-5     # as speechkd.enhance.stft: the level of digital silence is not amplified past this
COMPRESSION = 0.3    # |Y|^0.3, the magnitude compression the mask models see
MAG_FLOOR = 1e-8

DESCRIPTIONS = {
    MASK: "ONNX: mag [B,T,F] float32 (|STFT/level|^0.3 of the noisy input), state... -> mask [B,T,F] in [0, 1], "
          "state..._out (the causal state after the T frames; zeros before the first frame)",
}

# the compressed magnitudes of the frames ready [T, F] -> their masks [T, F] (the model's state kept inside)
MaskFn = Callable[[np.ndarray], np.ndarray]


def is_se_dir(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a directory whose manifest says it is an exported SE model."""
    if not path:
        return False
    mpath = os.path.join(os.fspath(path), MANIFEST)
    if not os.path.isfile(mpath):
        return False
    try:
        with open(mpath, encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError, RecursionError):
        return False  # read_se_manifest says what is wrong with it


def read_se_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of an exported SE dir."""
    root = os.fspath(path)
    man, mpath = load_manifest_json(root, "exp/<se model>")
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise SpeechkdError(f"manifest format is not {FORMAT!r}", path=mpath, field="format")
    version = man.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise SpeechkdError(f"format_version {version!r} is not one this speechkd reads (1..{FORMAT_VERSION})",
                            path=mpath, field="format_version", hint="export the model with this speechkd version")
    for key, kind in (("model", str), ("sample_rate", int), ("stft", dict), ("states", list), ("files", dict)):
        if not isinstance(man.get(key), kind):
            raise SpeechkdError(f"manifest has no valid {key!r}", path=mpath, field=key)
    for key in ("n_fft", "hop"):
        v = man["stft"].get(key)
        if not isinstance(v, int) or v < 1:
            raise SpeechkdError(f"stft.{key} must be a positive integer, got {v!r}", path=mpath, field=f"stft.{key}")
    if man["stft"]["hop"] > man["stft"]["n_fft"] // 2:
        raise SpeechkdError("stft.hop is over n_fft / 2 (the Hann overlap-add needs it at most that)", path=mpath,
                            field="stft.hop")
    for s in man["states"]:
        if (not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("shape"), list)
                or not all(isinstance(d, int) and d >= 0 for d in s["shape"])
                or s.get("batch_axis") not in range(len(s["shape"]))):
            raise SpeechkdError(f"malformed state entry {s!r}", path=mpath, field="states")
    for name in man["files"]:
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise SpeechkdError(f"file name {name!r} is not a plain name inside the dir", path=mpath, field="files")
        if not os.path.isfile(os.path.join(root, name)):
            raise SpeechkdError(f"{name} is missing", path=root, hint="the export is incomplete: export again")
    if MASK not in man["files"]:
        raise SpeechkdError(f"manifest lists no {MASK}", path=mpath, field="files")
    return man


def rms_level(wav: np.ndarray) -> float:
    """The utterance level the models normalise by: RMS, floored at :data:`RMS_FLOOR`."""
    x = np.asarray(wav, np.float32)
    return max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0, RMS_FLOOR)


def running_levels(wav: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """[T]: RMS of x[: min(t·hop + n_fft/2, N)] for each centred frame t, floored (the running level:
    what a stream knows when frame t is complete; as speechkd.enhance.stft.running_level)."""
    x = np.asarray(wav, np.float64).reshape(-1)
    ends = np.minimum(np.arange(len(x) // hop + 1) * hop + n_fft // 2, len(x))
    return np.maximum(np.sqrt(np.cumsum(x * x)[ends - 1] / ends), RMS_FLOOR)


def compressed(spec: np.ndarray, level: np.ndarray | float) -> np.ndarray:
    """|Y / s|^0.3 (floored), float32: what the mask models see."""
    return (np.maximum(np.abs(spec) / level, MAG_FLOOR) ** COMPRESSION).astype(np.float32)


class FrameStream:
    """Frame-by-frame STFT -> mask -> inverse STFT, equal to ``torch.istft(torch.stft(x) * M)``
    with ``center=True`` once :meth:`flush` has been called.

    :meth:`push` takes any number of samples and returns the output samples that are final (every
    frame overlapping them computed); :meth:`flush` ends the input (the last frames use the
    reflect padding of the end) and returns the rest, so the concatenated output has exactly the
    input's length. ``mask_fn`` gets the compressed magnitude of the frames ready at each call
    (in order, any number at a time; it carries its own state) and returns their masks.
    """

    def __init__(self, mask_fn: MaskFn, n_fft: int, hop: int, *, level: float | None = None):
        if hop > n_fft // 2 or n_fft % 2:
            raise ValueError(f"need an even n_fft and hop <= n_fft / 2, got {n_fft}, {hop}")
        self.mask_fn, self.n, self.h, self.p = mask_fn, n_fft, hop, n_fft // 2
        self.window = periodic_window("hann", n_fft).astype(np.float64)
        self.level = None if level is None else max(float(level), RMS_FLOOR)
        self.pending: list[np.ndarray] = []  # samples before the first frame can be made
        self.n_in = 0                        # samples received
        self.xp = np.zeros(0)                # the padded signal (xp[j] = x[j - n_fft/2]) from xp_start
        self.xp_start = 0
        self.next_t = 0                      # the next frame to compute (frame t: xp[t*hop : t*hop + n_fft])
        self.ola = np.zeros(0)               # overlap-add of the frames and of the squared windows, from ola_start
        self.env = np.zeros(0)
        self.ola_start = 0
        self.emitted = self.p                # the next xp index to return (x index 0)
        self.power = 0.0                     # sum of x^2 over x[:power_to] (the causal level)
        self.power_to = 0
        self.started = self.finished = False
        self.frames = 0
        self.seconds = 0.0                   # time spent in push/flush

    # -- input side --------------------------------------------------------------------------------
    def _append(self, x: np.ndarray) -> None:
        self.xp = np.concatenate([self.xp, x.astype(np.float64)])

    def _start(self) -> None:
        x = np.concatenate(self.pending).astype(np.float64)
        self.pending = []
        self.xp = np.concatenate([x[1:self.p + 1][::-1], x])  # torch's reflect padding of the start
        self.xp_start = 0
        self.started = True

    def _frames(self, t1: int) -> None:
        """Compute frames next_t .. t1 - 1 (all inside xp), add them to the overlap-add."""
        t0 = self.next_t
        if t1 <= t0:
            return
        idx = (np.arange(t0, t1) * self.h - self.xp_start)[:, None] + np.arange(self.n)[None, :]
        spec = np.fft.rfft(self.xp[idx] * self.window, axis=-1)  # [T, F]
        if self.level is not None:
            level: np.ndarray | float = self.level
        else:  # RMS of x[: t*hop + n_fft/2] (the samples received when frame t is complete), causal
            ends = np.minimum(np.arange(t0, t1) * self.h + self.p, self.n_in)
            level = np.empty(t1 - t0)
            for i, end in enumerate(ends):
                seg = self.xp[self.power_to + self.p - self.xp_start:end + self.p - self.xp_start]
                self.power += float(np.dot(seg, seg))
                self.power_to = int(end)
                level[i] = max(np.sqrt(self.power / max(self.power_to, 1)), RMS_FLOOR)
            level = level[:, None]
        mask = np.asarray(self.mask_fn(compressed(spec, level)), np.float64)
        frames = np.fft.irfft(spec * mask, n=self.n, axis=-1) * self.window  # [T, n_fft]
        end = (t1 - 1) * self.h + self.n
        if end - self.ola_start > len(self.ola):
            grow = end - self.ola_start - len(self.ola)
            self.ola = np.concatenate([self.ola, np.zeros(grow)])
            self.env = np.concatenate([self.env, np.zeros(grow)])
        w2 = self.window ** 2
        for i, t in enumerate(range(t0, t1)):
            a = t * self.h - self.ola_start
            self.ola[a:a + self.n] += frames[i]
            self.env[a:a + self.n] += w2
        self.next_t = t1
        self.frames += t1 - t0

    def _emit(self, upto: int) -> np.ndarray:
        """The final samples xp[emitted:upto], normalised by the summed squared windows."""
        if upto <= self.emitted:
            return np.zeros(0, np.float32)
        a, b = self.emitted - self.ola_start, upto - self.ola_start
        env = self.env[a:b]
        y = self.ola[a:b] / np.where(env > 1e-11, env, 1.0)
        self.emitted = upto
        # drop what no later frame or output needs
        drop = self.emitted - self.ola_start
        self.ola, self.env, self.ola_start = self.ola[drop:], self.env[drop:], self.emitted
        keep = max(0, min(self.next_t * self.h - self.n, self.power_to + self.p) - self.xp_start)
        if keep > 0:
            self.xp, self.xp_start = self.xp[keep:], self.xp_start + keep
        return y.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed samples; returns the output samples that are final now."""
        if self.finished:
            raise ValueError("the stream has ended (flush was called)")
        t0 = time.perf_counter()
        x = np.asarray(x, np.float32).reshape(-1)
        self.n_in += len(x)
        if not self.started:
            self.pending.append(x)
            if self.n_in <= self.p:  # the reflect padding of the start needs x[1 .. n_fft/2]
                return np.zeros(0, np.float32)
            self._start()
        else:
            self._append(x)
        # frames lying inside the samples received (no end padding needed yet)
        ready = (self.n_in + self.p - self.n) // self.h + 1
        self._frames(ready)
        out = self._emit(self.next_t * self.h)  # no later frame touches xp[:next_t * hop]
        self.seconds += time.perf_counter() - t0
        return out

    def flush(self) -> np.ndarray:
        """End the input: the last frames (reflect padding of the end) and every remaining sample."""
        if self.finished:
            return np.zeros(0, np.float32)
        t0 = time.perf_counter()
        n = self.n_in
        if n <= self.p:
            raise AudioError(f"{n} samples: too short to enhance (at least {self.p + 1}, half an STFT window)",
                             field="samples")
        if not self.started:
            self._start()
        s = self.xp_start  # torch's reflect padding of the end: x[n-2], ..., x[n-1-p] (at xp n+p-2 .. n-1)
        tail = self.xp[n - 1 - s:n + self.p - 1 - s][::-1]
        if len(tail) != self.p:
            raise AssertionError("the stream dropped samples the end padding needs")
        self._append(tail)
        self._frames(1 + n // self.h)  # torch.stft's frame count with center=True
        self.finished = True
        out = self._emit(n + self.p)
        self.seconds += time.perf_counter() - t0
        return out


class OnnxEnhancer:
    """An exported SE model: ``enh(wav, rate) -> enhanced wav`` offline, :meth:`stream` frame by frame."""

    def __init__(self, path: str | os.PathLike, *, threads: int = 0):
        require_onnxruntime()
        self.path = os.fspath(path)
        man = self.manifest = read_se_manifest(self.path)
        self.name, self.sample_rate = man["model"], int(man["sample_rate"])
        self.n_fft, self.hop = int(man["stft"]["n_fft"]), int(man["stft"]["hop"])
        self.causal = bool(man.get("causal", False))
        self.level = man.get("level", "utterance")
        if self.level not in ("utterance", "running"):
            raise SpeechkdError(f"unknown level {self.level!r}", path=self.path, field="level")
        self.states = man["states"]
        self.session = _session(os.path.join(self.path, MASK), threads)
        self.window = periodic_window("hann", self.n_fft)

    @property
    def latency_seconds(self) -> float:
        """Algorithmic latency of the stream: one STFT window."""
        return self.n_fft / self.sample_rate

    def initial_state(self, batch: int = 1) -> list[np.ndarray]:
        out = []
        for s in self.states:
            shape = list(s["shape"])
            shape[s["batch_axis"]] = batch
            out.append(np.zeros(shape, np.float32))
        return out

    def mask(self, mag: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """mask of ``mag`` [B, T, F] after ``state``; the state after it."""
        feeds = {"mag": np.ascontiguousarray(mag, np.float32)}
        feeds.update({s["name"]: x for s, x in zip(self.states, state)})
        out = self.session.run(None, feeds)
        return out[0], out[1:]

    def check_rate(self, rate: int, name: str) -> None:
        if rate != self.sample_rate:
            raise AudioError(f"sample rate is {rate} Hz but the model works at {self.sample_rate} Hz", path=name,
                             field="sample_rate", hint=f"resample it first (e.g. `sox in.wav -r {self.sample_rate} "
                                                       "out.wav`)")

    def __call__(self, wav: np.ndarray, rate: int, *, name: str = "<input>") -> np.ndarray:
        """The offline enhancement of one waveform (as the PyTorch model, with its level)."""
        self.check_rate(rate, name)
        x = np.asarray(wav, np.float32).reshape(-1)
        if len(x) <= self.n_fft // 2:
            raise AudioError(f"{len(x)} samples: too short to enhance (at least {self.n_fft // 2 + 1})", path=name,
                             field="samples")
        spec = stft(x[None].astype(np.float64), self.n_fft, self.hop, self.window, True)  # [1, F, T]
        level = running_levels(x, self.n_fft, self.hop)[None, :, None] if self.level == "running" else rms_level(x)
        mag = compressed(spec.transpose(0, 2, 1), level)
        m, _ = self.mask(mag, self.initial_state(1))
        return istft(spec * m.transpose(0, 2, 1), self.n_fft, self.hop, self.window, True, len(x))[0]

    def stream(self, *, level: float | None = None) -> FrameStream:
        """A :class:`FrameStream` running this model, its state carried from call to call."""
        if not self.causal:
            raise SpeechkdError(f"{self.name} is not causal: it cannot enhance frame by frame", path=self.path,
                                field="--stream", hint="enhance the whole file (without --stream)")
        state = self.initial_state(1)

        def mask_fn(mag: np.ndarray) -> np.ndarray:
            nonlocal state
            m, state = self.mask(mag[None], state)
            return m[0]

        return FrameStream(mask_fn, self.n_fft, self.hop, level=level)


def stream_file(stream: FrameStream, wav: np.ndarray, hop: int) -> np.ndarray:
    """``wav`` fed to ``stream`` one hop at a time, as audio arriving from a device would be."""
    out = [stream.push(wav[i:i + hop]) for i in range(0, len(wav), hop)]
    out.append(stream.flush())
    return np.concatenate(out)
