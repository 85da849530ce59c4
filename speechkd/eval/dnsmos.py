"""DNSMOS P.835 (Reddy et al., ICASSP 2022): a non-intrusive estimate of the ITU-T P.835 ratings
of one clip, SIG (speech signal), BAK (background noise) and OVRL (overall quality), 1-5, with no
clean reference: the measure CHiME-7 UDASE reports for real recordings.

Computed offline with the ONNX model the ``speechmos`` wheel ships (``dnsmos_models/
sig_bak_ovr.onnx``, the DNS Challenge's P.835 model) by the procedure of the challenge's
``dnsmos_local.py``: audio at 16 kHz (other rates resampled, soxr); a clip shorter than the
model's 9.01 s input repeated end to end until it is long enough; windows of 9.01 s every 1 s;
the model's raw scores mapped by the challenge's third-order calibration polynomials (the
non-personalised ones); the clip's score is the mean over its windows. Needs the optional
extra ``pip install 'speechkd[se-peers]'`` (speechmos and onnxruntime).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from speechkd.corpora.common import resample
from speechkd.errors import SpeechkdError

SR = 16000
INPUT_SECONDS = 9.01
KEYS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
# dnsmos_local.py, get_polyfit_val (not personalised): raw model output -> MOS, per dimension
POLY = {"dnsmos_sig": (-0.08397278, 1.22083953, 0.0052439),
        "dnsmos_bak": (-0.13166888, 1.60915514, -0.39604546),
        "dnsmos_ovrl": (-0.06766283, 1.11546468, 0.04602535)}
HINT = "pip install 'speechkd[se-peers]' (speechmos and onnxruntime), or --dnsmos off"


def model_path() -> str | None:
    """The P.835 ONNX model inside the installed ``speechmos`` wheel (not imported), or None."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "dnsmos_models", "sig_bak_ovr.onnx")
    return path if os.path.isfile(path) else None


def available() -> bool:
    return model_path() is not None and importlib.util.find_spec("onnxruntime") is not None


@functools.lru_cache(maxsize=1)
def _session():
    path = model_path()
    if path is None or importlib.util.find_spec("onnxruntime") is None:
        raise SpeechkdError("DNSMOS needs the speechmos wheel and onnxruntime, not both installed", field="--dnsmos",
                            hint=HINT)
    import onnxruntime as ort  # optional: only DNSMOS needs it

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # evaluation parallelises over processes (--nj)
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def windows(wav: np.ndarray) -> np.ndarray:
    """[W, 9.01 s] float32 windows of a 16 kHz clip, by dnsmos_local.py's rule."""
    n = int(INPUT_SECONDS * SR)
    audio = np.asarray(wav, np.float32)
    if not len(audio):
        raise ValueError("DNSMOS of an empty clip")
    while len(audio) < n:
        audio = np.append(audio, audio)
    hops = int(np.floor(len(audio) / SR) - INPUT_SECONDS) + 1
    return np.stack([audio[i * SR: i * SR + n] for i in range(hops) if len(audio[i * SR: i * SR + n]) == n])


def dnsmos(wav: np.ndarray, sr: int) -> dict[str, float]:
    """{dnsmos_sig, dnsmos_bak, dnsmos_ovrl} of one clip at ``sr`` Hz."""
    if sr != SR:
        wav = resample(np.asarray(wav, np.float32), sr, SR)
    raw = _session().run(None, {"input_1": windows(wav)})[0]  # [W, 3]: sig, bak, ovrl
    return {k: float(np.mean(np.polyval(POLY[k], raw[:, i]))) for i, k in enumerate(KEYS)}
