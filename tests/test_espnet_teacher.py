"""A tiny ESPnet2 Transformer-TTS, trained here for a few steps, becomes a speechkd teacher dump.

Built-in data: four flite sentences (the voice the mini_en corpus uses), log-mels computed by
speechkd with the FeatureConfig read from the ESPnet config written here (ESPnet's LogMelFbank
settings: base-10 log, floor 1e-10, 80-7600 Hz), characters as ESPnet tokens. The ESPnet model is
espnet2.tts.transformer.Transformer itself; its teacher-forced attention goes through ESPnet's own
DurationCalculator (argmax durations and focus rate of the most diagonal head) into a decode dir
laid out as tts_inference writes one, which `speechkd espnet import-teacher` turns into a dump."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import yaml

HAVE_ESPNET = importlib.util.find_spec("espnet2") is not None
pytestmark = pytest.mark.skipif(not HAVE_ESPNET, reason="ESPnet extra absent (bash tools/install_espnet.sh)")

SENTENCES = {"slt_a": "the cat sat on a mat", "slt_b": "a dog ran to the park",
             "slt_c": "we sing a long song", "slt_d": "the sun is hot today"}
CONFIG = {"feats_extract": "fbank",
          "feats_extract_conf": {"fs": 16000, "n_fft": 1024, "hop_length": 256, "win_length": None,
                                 "fmin": 80, "fmax": 7600, "n_mels": 80},
          "tts": "transformer", "tts_conf": {"reduction_factor": 1}}


def test_tiny_espnet_transformer_tts_gives_a_speechkd_teacher_dump(tmp_path):
    import torch
    from espnet2.tts.transformer.transformer import Transformer
    from espnet2.tts.utils.duration_calculator import DurationCalculator

    from speechkd.cli import main
    from speechkd.distill.espnet_io import feature_config_from_espnet
    from speechkd.features.mel import log_mel_numpy

    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    chars = sorted(set("".join(SENTENCES.values())))
    toks = ["<blank>", "<unk>", *chars, "<sos/eos>"]
    cfg = dict(CONFIG, token_list=toks)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    fc = feature_config_from_espnet(str(tmp_path / "config.yaml"))
    texts, mels = {}, {}
    for utt, s in SENTENCES.items():
        wav_path = tmp_path / f"{utt}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", s, "-o", str(wav_path)], check=True)
        wav, sr = sf.read(wav_path, dtype="float32")
        texts[utt] = torch.tensor([toks.index(c) for c in s])
        mels[utt] = torch.from_numpy(log_mel_numpy(wav, sr, fc))

    torch.manual_seed(0)
    model = Transformer(idim=len(toks), odim=80, embed_dim=32, eprenet_conv_layers=1, eprenet_conv_chans=32,
                        dprenet_units=32, elayers=1, eunits=64, adim=32, aheads=2, dlayers=1, dunits=64,
                        postnet_layers=0, num_heads_applied_guided_attn=2, num_layers_applied_guided_attn=1)
    utts = sorted(SENTENCES)
    pad = torch.nn.utils.rnn.pad_sequence
    text = pad([texts[u] for u in utts], batch_first=True)
    feats = pad([mels[u] for u in utts], batch_first=True)
    tl = torch.tensor([len(texts[u]) for u in utts])
    fl = torch.tensor([len(mels[u]) for u in utts])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _, _ = model(text, tl, feats, fl)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses  # it trained

    # teacher-forced decode, written as tts_inference writes one job's output
    dec = tmp_path / "decode" / "train"
    for d in ("durations", "focus_rates", "denorm"):
        (dec / d).mkdir(parents=True)
    model.eval()
    calc = DurationCalculator()
    dur_lines, foc_lines, scp_lines, esp_focus = [], [], [], {}
    with torch.no_grad():
        for u in utts:
            out = model.inference(texts[u], feats=mels[u], use_teacher_forcing=True)
            d, f = calc(out["att_w"])
            assert out["att_w"].shape[-1] == len(texts[u]) + 1  # ESPnet's <sos/eos> input
            dur_lines.append(f"{u} {' '.join(map(str, d.long().numpy()))}\n")
            foc_lines.append(f"{u} {float(f):.5f}\n")
            esp_focus[u] = float(f"{float(f):.5f}")
            np.save(dec / "denorm" / f"{u}.npy", out["feat_gen"].numpy())  # no normalize layer: raw
            scp_lines.append(f"{u} {dec / 'denorm' / f'{u}.npy'}\n")
    (dec / "durations" / "durations").write_text("".join(dur_lines))
    (dec / "focus_rates" / "focus_rates").write_text("".join(foc_lines))
    (dec / "denorm" / "feats.scp").write_text("".join(scp_lines))

    out_dir = tmp_path / "dump" / "teacher" / "train" / "teacher_forced"
    assert main(["espnet", "import-teacher", "--decode-dir", str(dec), "--espnet-config", str(tmp_path / "config.yaml"),
                 "--kd-mode", "teacher_forced", "--out", str(out_dir), "--focus-threshold", "0.0"]) == 0
    index = dict(line.split(" ", 1) for line in (out_dir / "index.scp").read_text().splitlines())
    assert sorted(index) == utts
    for u in utts:
        with np.load(out_dir / "data" / f"{u}.npz") as z:
            d, n = z["durations"], int(z["num_frames"])
        assert n == len(mels[u]) and int(d.sum()) == n and d.min() >= 1 and len(d) == len(texts[u])
    rep = json.loads((out_dir / "report.json").read_text())
    assert rep["num_utts"] == 4
    assert abs(rep["focus_rate"]["mean"] - np.mean(list(esp_focus.values()))) < 1e-4
    assert "focus rate mean" in (out_dir / "report.md").read_text()
    zeros = sum(int((np.load(out_dir / "data" / f"{u}.npz")["durations_espnet"][:-1] == 0).sum()) for u in utts)
    print(f"ESPnet tiny teacher: loss {np.mean(losses[:5]):.3f} -> {np.mean(losses[-5:]):.3f}, focus rates "
          f"{[esp_focus[u] for u in utts]}, {zeros} zero-frame tokens repaired")
