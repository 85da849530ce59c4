"""A tiny ESPnet2 Transformer-TTS, trained here for a few steps, as speechkd's teacher.

Built-in data: four flite sentences (the voice the mini_en corpus uses) laid out as an ESPnet2
``dump/raw/train`` with pre-tokenised character text, imported with ``speechkd espnet
import-data``; features by ``speechkd features`` with the FeatureConfig ``speechkd espnet
feature-config`` reads from the ESPnet config (ESPnet's LogMelFbank settings). The model is built
by ESPnet's own ``TTSTask.build_model`` (global_mvn normalisation, Transformer-TTS with two decoder
layers of two heads), trained on those mels and saved as ESPnet saves one (a state dict ``.pth``
next to ``config.yaml``, the config's stats_file relative to a recipe dir the tests do not run in).

Two ways from it to a speechkd teacher dump: ``speechkd teacher-dump --espnet-model`` (the model
run by speechkd: its attention through speechkd's head selection, MAS, refinement, report), and
``speechkd espnet import-teacher`` of a decode written as ``tts_inference`` writes one (ESPnet's
own DurationCalculator). A FastSpeech student trains on the first."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

HAVE_ESPNET = importlib.util.find_spec("espnet2") is not None
pytestmark = pytest.mark.skipif(not HAVE_ESPNET, reason="ESPnet extra absent (bash tools/install_espnet.sh)")

SENTENCES = {"slt_a": "the cat sat on a mat", "slt_b": "a dog ran to the park",
             "slt_c": "we sing a long song", "slt_d": "the sun is hot today"}
STATS = "exp/tts_stats_raw/train/feats_stats.npz"  # as ESPnet writes it: relative to the recipe dir
TTS_CONF = {"embed_dim": 32, "eprenet_conv_layers": 1, "eprenet_conv_chans": 32, "dprenet_units": 32,
            "elayers": 1, "eunits": 64, "adim": 32, "aheads": 2, "dlayers": 2, "dunits": 64, "postnet_layers": 0,
            "num_heads_applied_guided_attn": 2, "num_layers_applied_guided_attn": 2, "reduction_factor": 1}
CONFIG = {"feats_extract": "fbank",
          "feats_extract_conf": {"fs": 16000, "n_fft": 1024, "hop_length": 256, "win_length": None,
                                 "fmin": 80, "fmax": 7600, "n_mels": 80},
          "normalize": "global_mvn", "normalize_conf": {"stats_file": STATS},
          "tts": "transformer", "tts_conf": TTS_CONF, "odim": None, "model_conf": {}}


def _tokens(s: str) -> list[str]:
    return ["<space>" if c == " " else c for c in s]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The ESPnet recipe dir (data, trained model), the speechkd dump of its data, the losses."""
    import torch
    from espnet2.tasks.tts import TTSTask

    from speechkd.cli import main
    from speechkd.features.dump import read_feats_scp

    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    root = tmp_path_factory.mktemp("espnet_tiny")
    esp = root / "egs2/tiny/tts1"  # the ESPnet recipe dir
    raw = esp / "dump/raw/train"
    (esp / "downloads").mkdir(parents=True)
    raw.mkdir(parents=True)
    for utt, s in SENTENCES.items():
        subprocess.run(["flite", "-voice", "slt", "-t", s, "-o", str(esp / "downloads" / f"{utt}.wav")], check=True)
    (raw / "wav.scp").write_text("".join(f"{u} downloads/{u}.wav\n" for u in sorted(SENTENCES)))
    (raw / "text").write_text("".join(f"{u} {' '.join(_tokens(s))}\n" for u, s in sorted(SENTENCES.items())))
    (raw / "utt2spk").write_text("".join(f"{u} slt\n" for u in sorted(SENTENCES)))
    chars = sorted({t for s in SENTENCES.values() for t in _tokens(s)})
    toks = ["<blank>", "<unk>", *chars, "<sos/eos>"]
    exp = esp / "exp/tts_tiny"
    exp.mkdir(parents=True)
    config = exp / "config.yaml"
    config.write_text(yaml.safe_dump(dict(CONFIG, token_list=toks)))

    # ESPnet data in, speechkd features with the ESPnet config's settings
    dump = root / "dump"
    assert main(["espnet", "import-data", "--espnet-dir", str(raw), "--espnet-root", str(esp),
                 "--out", str(root / "data/train"), "--token-list", str(config),
                 "--tokens-out", str(dump / "tokens/train/tokens"),
                 "--token-list-out", str(root / "tokens.txt")]) == 0
    assert main(["espnet", "feature-config", "--espnet-config", str(config), "--out", str(root / "feats.yaml")]) == 0
    assert main(["features", "--data-dir", str(root / "data/train"), "--out", str(dump / "feats/train"),
                 "--config", str(root / "feats.yaml")]) == 0
    feats = read_feats_scp(str(dump / "feats/train"))
    mels = {u: torch.from_numpy(np.load(feats[u][0])["mel"]) for u in sorted(SENTENCES)}

    # ESPnet's stats file (its npz layout), then the model as ESPnet builds it
    allm = torch.cat(list(mels.values())).double()
    (esp / STATS).parent.mkdir(parents=True)
    np.savez(esp / STATS, count=np.array(float(len(allm))), sum=allm.sum(0).numpy(),
             sum_square=(allm ** 2).sum(0).numpy())
    args = dict(CONFIG, token_list=toks, normalize_conf={"stats_file": str(esp / STATS)})
    torch.manual_seed(0)
    model = TTSTask.build_model(argparse.Namespace(**args))
    utts = sorted(SENTENCES)
    texts = {u: torch.tensor([toks.index(t) for t in _tokens(SENTENCES[u])]) for u in utts}
    pad = torch.nn.utils.rnn.pad_sequence
    text = pad([texts[u] for u in utts], batch_first=True)
    tl = torch.tensor([len(texts[u]) for u in utts])
    fl = torch.tensor([len(mels[u]) for u in utts])
    ys, _ = model.normalize(pad([mels[u] for u in utts], batch_first=True), fl)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _, _ = model.tts(text, tl, ys, fl)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.save(model.state_dict(), exp / "valid.loss.ave.pth")
    return {"root": root, "esp": esp, "exp": exp, "config": config, "model": model, "toks": toks, "texts": texts,
            "mels": mels, "losses": losses, "dump": dump}


def _dump_npz(d, utt):
    with np.load(d / "data" / f"{utt}.npz") as z:
        return {k: z[k] for k in z.files}


def test_espnet_teacher_runs_in_speechkd_teacher_dump_and_a_fastspeech_student_trains_on_it(tiny, tmp_path):
    import torch

    from fake_dump import tiny_overrides
    from speechkd.checkpoints import load_model
    from speechkd.cli import main
    from speechkd.distill.espnet_teacher import espnet_teacher
    from speechkd.text.tokens import read_tokens
    from speechkd.train.config import load_train_config
    from speechkd.train.trainer import run_training

    losses = tiny["losses"]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses  # it trained
    dump = tiny["dump"]
    out = dump / "teacher/train"
    assert main(["teacher-dump", "--espnet-config", str(tiny["config"]), "--espnet-model",
                 str(tiny["exp"] / "valid.loss.ave.pth"), "--data", str(dump), "--split", "train",
                 "--out", str(out), "--kd-mode", "both", "--max-frames-per-token", "2", "--device", "cpu"]) == 0
    tokens = read_tokens(str(dump / "tokens/train/tokens"))
    for mode in ("teacher_forced", "free_running"):
        d = out / mode
        info = json.loads((d / "dump_info.json").read_text())
        assert info["model"] == "espnet2.transformer" and info["reduction_factor"] == 1
        assert info["checkpoint"] == str(tiny["exp"] / "valid.loss.ave.pth") and "refine" in info
        rep = json.loads((d / "report.json").read_text())
        assert rep["num_utts"] == 4 and rep["num_with_durations"] == 4
        assert set(rep["chosen_heads"]) <= {f"layer{li}_head{h}" for li in (0, 1) for h in (0, 1)}
        assert "focus rate mean" in (d / "report.md").read_text() and (d / "focus_rate_hist.png").exists()
        for u in SENTENCES:
            z = _dump_npz(d, u)
            n = int(z["num_frames"])
            assert len(z["durations"]) == len(tokens[u]) == len(tiny["texts"][u])  # <eos> folded into the last
            assert int(z["durations"].sum()) == n and z["durations"].min() >= 1
            assert int(z["durations_attn"].sum()) == n and z["attn"].shape == (len(tokens[u]), n)
            assert 0.0 < float(z["focus_rate"]) <= 1.0
            if mode == "teacher_forced":
                assert n == len(tiny["mels"][u])
            else:
                # ESPnet's decoding: capped at maxlenratio x (S + 1) steps; denormalised to log-mels
                assert n <= 2 * (len(tokens[u]) + 1) and z["mel"].shape == (n, 80) and "stopped" in z
                gt = tiny["mels"][u].numpy()
                assert abs(float(z["mel"].mean()) - float(gt.mean())) < 0.5  # normalised ones have mean ~0

    # the tokens reach ESPnet as ESPnet's ids, and its <sos/eos> row joins the last token
    import speechkd.distill.espnet_teacher as et

    t = espnet_teacher(str(tiny["config"]), str(tiny["exp"] / "valid.loss.ave.pth"), torch.device("cpu"))
    ids = t.token_list.encode(tokens["slt_a"])
    seen = {}
    orig = tiny["model"].tts.__class__.inference

    def spy(self, text, **kw):
        seen["text"] = text.tolist()
        return orig(self, text, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(tiny["model"].tts.__class__, "inference", spy)
    try:
        m = tiny["mels"]["slt_a"]
        batch = {"utts": ["slt_a"], "tokens": torch.tensor([ids]), "token_lens": torch.tensor([len(ids)]),
                 "mels": m[None], "mel_lens": torch.tensor([len(m)])}
        t.run_batch(batch, "teacher_forced", et.DumpOptions(), None, {})
    finally:
        mp.undo()
    assert seen["text"] == tiny["texts"]["slt_a"].tolist()
    a = torch.rand(2, 3, 7, 5)
    folded = et.fold_eos(a, 4)
    assert len(folded) == 2 and folded[0].shape == (3, 4, 7)
    assert np.allclose(folded[1][:, 3], (a[1, :, :, 3] + a[1, :, :, 4]).numpy())

    # a FastSpeech student trains end to end on the ESPnet teacher's dump
    paths = {"dump": dump, "token_list": tiny["root"] / "tokens.txt"}
    conf = load_train_config(Path(__file__).resolve().parents[1] / "recipes/conf/fastspeech_tiny.yaml",
                             tiny_overrides(paths, **{"data.dev_set": "train", "trainer.max_steps": 2}))
    last = run_training(conf, str(tmp_path / "exp_fs"), progress_bar=False)
    assert torch.load(last, weights_only=True)["global_step"] == 2
    lm = load_model(str(tmp_path / "exp_fs"))
    assert lm.name == "fastspeech" and lm.feature_config.log_base == "10"


def test_espnet_teacher_errors(tiny, tmp_path):
    from speechkd.align.refine import RefineConfig
    from speechkd.cli import main
    from speechkd.distill.espnet_teacher import espnet_teacher_dump
    from speechkd.distill.teacher_dump import DumpOptions
    from speechkd.errors import FeatureMismatchError, SpeechkdError
    from speechkd.features.config import FeatureConfig

    dump, pth = tiny["dump"], str(tiny["exp"] / "valid.loss.ave.pth")
    # features not made with the ESPnet config's settings: one line naming the fields and the remedy
    other = tmp_path / "dump"
    shutil.copytree(dump / "tokens", other / "tokens")
    shutil.copytree(dump / "feats", other / "feats")
    FeatureConfig(n_mels=80).save(other / "feats/train/feature_config.yaml")
    with pytest.raises(FeatureMismatchError, match=r"log_base.*speechkd espnet feature-config"):
        espnet_teacher_dump(str(tiny["config"]), pth, str(other), "train", str(tmp_path / "t"), "teacher_forced",
                            DumpOptions())
    # a token ESPnet's inventory lacks is an error, not a silent <unk>
    shutil.rmtree(other / "feats")
    shutil.copytree(dump / "feats", other / "feats")
    (other / "tokens/train/tokens").write_text((dump / "tokens/train/tokens").read_text().replace("slt_a t", "slt_a Q"))
    with pytest.raises(SpeechkdError, match="unknown symbol.*'Q'"):
        espnet_teacher_dump(str(tiny["config"]), pth, str(other), "train", str(tmp_path / "t"), "teacher_forced",
                            DumpOptions())
    # a model that is not the config's, a file that is not a state dict, a non-AR config
    cfg = yaml.safe_load(tiny["config"].read_text())
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(dict(cfg, tts_conf=dict(cfg["tts_conf"], adim=48))))
    with pytest.raises(SpeechkdError, match="does not fit its config"):
        espnet_teacher_dump(str(bad), pth, str(dump), "train", str(tmp_path / "t"), "teacher_forced", DumpOptions())
    (tmp_path / "x.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SpeechkdError, match="cannot read checkpoint"):
        espnet_teacher_dump(str(tiny["config"]), str(tmp_path / "x.pth"), str(dump), "train", str(tmp_path / "t"),
                            "teacher_forced", DumpOptions())
    bad.write_text(yaml.safe_dump(dict(cfg, tts="fastspeech")))
    with pytest.raises(SpeechkdError, match="AR teacher"):
        espnet_teacher_dump(str(bad), pth, str(dump), "train", str(tmp_path / "t"), "teacher_forced", DumpOptions())
    # a teacher whose attention is not diagonal enough is refused with ESPnet's remedy, not speechkd's recipe's
    with pytest.raises(SpeechkdError, match=r"does not align: 0.0% .*\(teacher_forced\).*ESPnet teacher longer"):
        espnet_teacher_dump(str(tiny["config"]), pth, str(dump), "train", str(tmp_path / "t"), "teacher_forced",
                            DumpOptions(focus_threshold=1.0, min_aligned=0.5, refine=RefineConfig(iters=0)))
    # the CLI: one teacher, and the ESPnet pair together (exit 2)
    base = ["teacher-dump", "--data", str(dump), "--out", str(tmp_path / "t"), "--kd-mode", "teacher_forced"]
    assert main(base) == 2
    assert main(base + ["--espnet-model", pth]) == 2
    assert main(base + ["--espnet-model", pth, "--espnet-config", str(tiny["config"]), "--average", "2"]) == 2


def test_espnet_decode_imports_as_a_teacher_dump(tiny, tmp_path):
    """ESPnet's own teacher-forced decode (DurationCalculator), as tts_inference writes it, imported."""
    import torch
    from espnet2.tts.utils.duration_calculator import DurationCalculator

    from speechkd.cli import main

    model, texts, mels = tiny["model"], tiny["texts"], tiny["mels"]
    utts = sorted(SENTENCES)
    dec = tmp_path / "decode" / "train"
    for d in ("durations", "focus_rates", "denorm"):
        (dec / d).mkdir(parents=True)
    model.eval()
    calc = DurationCalculator()
    dur_lines, foc_lines, scp_lines, esp_focus = [], [], [], {}
    with torch.no_grad():
        for u in utts:
            # ESPnetTTSModel.inference would extract the mels itself: the dump's go through its normalize
            feats, _ = model.normalize(mels[u][None], torch.tensor([len(mels[u])]))
            out = model.tts.inference(texts[u], feats=feats[0], use_teacher_forcing=True)
            d, f = calc(out["att_w"])
            assert out["att_w"].shape[-1] == len(texts[u]) + 1  # ESPnet's <sos/eos> input
            dur_lines.append(f"{u} {' '.join(map(str, d.long().numpy()))}\n")
            foc_lines.append(f"{u} {float(f):.5f}\n")
            esp_focus[u] = float(f"{float(f):.5f}")
            denorm, _ = model.normalize.inverse(out["feat_gen"][None].clone(), torch.tensor([len(mels[u])]))
            np.save(dec / "denorm" / f"{u}.npy", denorm[0].numpy())
            scp_lines.append(f"{u} {dec / 'denorm' / f'{u}.npy'}\n")
    (dec / "durations" / "durations").write_text("".join(dur_lines))
    (dec / "focus_rates" / "focus_rates").write_text("".join(foc_lines))
    (dec / "denorm" / "feats.scp").write_text("".join(scp_lines))

    out_dir = tmp_path / "teacher" / "train" / "teacher_forced"
    assert main(["espnet", "import-teacher", "--decode-dir", str(dec), "--espnet-config", str(tiny["config"]),
                 "--kd-mode", "teacher_forced", "--out", str(out_dir), "--focus-threshold", "0.0",
                 "--feats", str(tiny["dump"] / "feats/train")]) == 0
    index = dict(line.split(" ", 1) for line in (out_dir / "index.scp").read_text().splitlines())
    assert sorted(index) == utts
    for u in utts:
        z = _dump_npz(out_dir, u)
        d, n = z["durations"], int(z["num_frames"])
        assert n == len(mels[u]) and int(d.sum()) == n and d.min() >= 1 and len(d) == len(texts[u])
    rep = json.loads((out_dir / "report.json").read_text())
    assert rep["num_utts"] == 4
    assert abs(rep["focus_rate"]["mean"] - np.mean(list(esp_focus.values()))) < 1e-4
    assert "focus rate mean" in (out_dir / "report.md").read_text()


def test_espnet_tacotron2_takes_the_same_path(tiny, tmp_path):
    """Tacotron 2's one location-sensitive attention is one layer of one head (random weights)."""
    import torch
    from espnet2.tasks.tts import TTSTask

    from speechkd.cli import main

    cfg = yaml.safe_load(tiny["config"].read_text())
    cfg.update(tts="tacotron2", tts_conf={"embed_dim": 16, "elayers": 1, "eunits": 16, "econv_layers": 1,
                                          "econv_chans": 16, "adim": 16, "aconv_chans": 4, "aconv_filts": 5,
                                          "dlayers": 1, "dunits": 16, "prenet_layers": 1, "prenet_units": 16,
                                          "postnet_layers": 0, "reduction_factor": 1})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    stats = tiny["esp"] / STATS
    torch.manual_seed(0)
    model = TTSTask.build_model(argparse.Namespace(**dict(cfg, normalize_conf={"stats_file": str(stats)})))
    torch.save(model.state_dict(), tmp_path / "tac.pth")
    out = tmp_path / "teacher"
    assert main(["teacher-dump", "--espnet-config", str(tmp_path / "config.yaml"), "--espnet-model",
                 str(tmp_path / "tac.pth"), "--data", str(tiny["dump"]), "--split", "train", "--out", str(out),
                 "--kd-mode", "both", "--max-frames-per-token", "2", "--refine-iters", "0", "--device", "cpu"]) == 0
    rep = json.loads((out / "teacher_forced/report.json").read_text())
    assert rep["chosen_heads"] == {"layer0_head0": 4} and rep["num_with_durations"] == 4
    for u in SENTENCES:
        z = _dump_npz(out / "teacher_forced", u)
        assert int(z["durations"].sum()) == int(z["num_frames"]) == len(tiny["mels"][u]) and z["durations"].min() >= 1
    # untrained, its stop token fires at random: outputs shorter than their tokens have no durations
    rep = json.loads((out / "free_running/report.json").read_text())
    assert rep["num_utts"] == 4 and set(rep["chosen_heads"]) <= {"layer0_head0"}
    assert all(f["reason"].startswith(("too_short", "never_stopped", "low_focus_rate")) for f in rep["filtered"])
    assert len((out / "free_running/index.scp").read_text().splitlines()) == rep["num_with_durations"]
