"""``speechkd train-vocoder``: train a neural vocoder in an exp dir (Lightning; resumes after a kill).

Recipe stage 9::

    speechkd train-vocoder --config conf/vocoder_vocos_demo.yaml --feats dump/feats --data data \\
        --exp exp/vocoder_vocos [KEY=VALUE ...]

``--feats`` is the feature dump root (``<split>/feats.scp``), ``--data`` the data root whose
``<split>/wav.scp`` holds the same utterances' audio. Settings: VocoderTrainConfig defaults <-
``--config`` <- dotted ``KEY=VALUE`` overrides (e.g. ``generator_conf.dim=128 trainer.max_minutes=5``)
<- the flags. Rerunning the same command continues from ``exp/<tag>/checkpoints/last.ckpt``;
the trained vocoder is then ``speechkd vocode --vocoder exp/<tag>``.
"""

from __future__ import annotations

import argparse

from speechkd.utils import args as av
from speechkd.config import dump_config
from speechkd.errors import ConfigError
from speechkd.train.vocoder import load_vocoder_config, run_vocoder_training

FLAGS = {"feats": "data.feats_dir", "data": "data.data_dir", "teacher_audio": "data.teacher_dir",
         "max_minutes": "trainer.max_minutes", "max_steps": "trainer.max_steps", "accelerator": "trainer.accelerator",
         "devices": "trainer.devices", "num_nodes": "trainer.num_nodes", "strategy": "trainer.strategy"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = av.RUNS_PIPES
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--config", type=av.text_file, help="YAML (e.g. conf/vocoder_vocos_demo.yaml)")
    p.add_argument("--exp", type=av.output_dir, help="experiment dir (e.g. exp/vocoder_vocos)")
    p.add_argument("--feats", type=av.existing_dir, help="feature dump root with <split>/feats.scp (e.g. dump/feats)")
    p.add_argument("--data", type=av.existing_dir, help="data root with <split>/wav.scp (e.g. data): the "
                   "recordings as targets")
    p.add_argument("--teacher-audio", type=av.existing_dir,
                   help="vocoder distillation: root with <split>/<utt>.wav, a teacher vocoder's output for the "
                        "--feats mels (speechkd vocode --feats FEATS/<split> --vocoder hifigan_universal --out "
                        "DIR/<split>), the targets instead of the recordings")
    p.add_argument("--max-minutes", type=av.positive_float, help="training time limit in minutes (over resumes)")
    p.add_argument("--max-steps", type=av.positive_int, help="generator step limit")
    p.add_argument("--accelerator", type=av.accelerator, help="auto, cpu, gpu")
    p.add_argument("--devices", type=av.devices, help="devices per node: auto, N, or a list 0,1")
    p.add_argument("--num-nodes", type=av.positive_int, help="machines for multi-node DDP")
    p.add_argument("--strategy", type=av.nonempty_str, help="Lightning strategy (auto, ddp, ...)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def main(args: argparse.Namespace) -> int:
    flags = [f"{key}={getattr(args, name)}" for name, key in FLAGS.items() if getattr(args, name) is not None]
    cfg = load_vocoder_config(args.config, list(args.overrides) + flags)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.exp:
        raise ConfigError("--exp is required", field="--exp", hint="e.g. --exp exp/vocoder_vocos")
    last = run_vocoder_training(cfg, args.exp)
    print(f"{args.exp}: last checkpoint {last}")
    return 0
