"""Speech-enhancement metrics of an estimate against a clean reference.

- SI-SDR (Le Roux et al. 2019, eqs. 4-5): both signals made zero-mean,
  s_target = (<ŝ, s> / ||s||²) s, e = ŝ − s_target,
  SI-SDR = 10 log10(||s_target||² / ||e||²) dB.
- PESQ wide-band (ITU-T P.862.2) through the ``pesq`` package, 16 kHz only.
  A clip PESQ cannot score (silence, under 0.25 s) gives NaN and the reason.
- STOI (Taal et al. 2011) and ESTOI (Jensen & Taal 2016) through ``pystoi``,
  which resamples to 10 kHz internally; too little speech gives NaN and the reason.
"""

from __future__ import annotations

import numpy as np

PESQ_SAMPLE_RATE = 16000
SI_SDR_MAX = 160.0  # dB: the value of a perfect estimate (error energy floored at 1e-16 of the target's)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019). Equal lengths required;
    a silent reference gives NaN; a perfect estimate gives ``SI_SDR_MAX``."""
    est = np.asarray(estimate, np.float64)
    ref = np.asarray(reference, np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"si_sdr needs equal shapes, got {est.shape} and {ref.shape}")
    est = est - est.mean()
    ref = ref - ref.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref_energy == 0.0:
        return float("nan")
    target = (np.dot(est, ref) / ref_energy) * ref
    t_energy = float(np.dot(target, target))
    e = est - target
    e_energy = max(float(np.dot(e, e)), 1e-16 * t_energy)
    if t_energy == 0.0:  # estimate orthogonal to (or silent against) the reference
        return -SI_SDR_MAX
    return float(10.0 * np.log10(t_energy / e_energy))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> tuple[float, str | None]:
    """(wide-band PESQ MOS-LQO, None), or (NaN, reason) when PESQ cannot score the pair."""
    if sample_rate != PESQ_SAMPLE_RATE:
        raise ValueError(f"PESQ-wb needs {PESQ_SAMPLE_RATE} Hz audio, got {sample_rate} Hz (resample first)")
    ref = np.asarray(reference, np.float64)
    est = np.asarray(estimate, np.float64)
    if not np.any(ref) or not np.any(est):
        return float("nan"), "silent clip: PESQ detects no utterance"
    from pesq import PesqError, pesq

    try:
        return float(pesq(sample_rate, ref, est, "wb")), None
    except PesqError as e:
        msg = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        return float("nan"), f"{type(e).__name__}: {msg}"


def stoi_scores(reference: np.ndarray, estimate: np.ndarray,
                sample_rate: int) -> tuple[float, float, str | None]:
    """(STOI, ESTOI, None), or NaNs and the reason when pystoi cannot score the pair
    (it warns and returns 1e-5 when fewer than 30 frames, ~0.4 s, are within
    40 dB of the reference's loudest)."""
    import warnings

    from pystoi import stoi

    ref = np.asarray(reference, np.float64)
    est = np.asarray(estimate, np.float64)
    if not np.any(ref):
        return float("nan"), float("nan"), "silent reference"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = float(stoi(ref, est, sample_rate, extended=False))
        est_ = float(stoi(ref, est, sample_rate, extended=True))
    if caught and st <= 1e-5:
        return float("nan"), float("nan"), str(caught[0].message).split(".")[0]
    return st, est_, None
