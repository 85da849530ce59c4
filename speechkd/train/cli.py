"""``speechkd train``: train an acoustic model in an exp dir (resumes after a kill).

Recipe stage 3::

    speechkd train --config conf/teacher_ar_demo.yaml --data dump \\
        --token-list data/token_list/phoneme/tokens.txt --exp exp/teacher_ar [KEY=VALUE ...]

Settings: TrainConfig defaults <- ``--config`` YAML <- ``KEY=VALUE`` overrides (dotted, e.g.
``model_conf.reduction_factor=1 optim.lr=5e-4``) <- the flags below, which are shortcuts for
``data.*`` and ``trainer.*`` keys. ``--print-config`` prints the resolved config with help.
Multi-GPU / multi-node / mixed precision go through Lightning (``--devices 4 --strategy ddp
--precision 16-mixed``); on a CPU-only machine ``accelerator: auto`` picks the CPU.
Rerunning the same command continues from ``exp/<tag>/checkpoints/last.ckpt``.

Students (stages 5-6) read the teacher dump of stage 4 as well::

    speechkd train --config conf/fastspeech_demo.yaml --data dump --token-list ... \
        --exp exp/fastspeech --kd-mode free_running [--teacher-dump dump/teacher]
"""

from __future__ import annotations

import argparse

from speechkd.config import dump_config
from speechkd.utils import args as av
from speechkd.errors import ConfigError
from speechkd.train.config import load_train_config
from speechkd.train.trainer import run_training

# flag -> config key
FLAGS = {"data": "data.dump_dir", "token_list": "data.token_list", "devices": "trainer.devices",
         "num_nodes": "trainer.num_nodes", "strategy": "trainer.strategy", "precision": "trainer.precision",
         "max_minutes": "trainer.max_minutes", "max_steps": "trainer.max_steps", "accelerator": "trainer.accelerator",
         "kd_mode": "data.kd_mode", "teacher_dump": "data.teacher_dump_dir"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--config", type=av.text_file, help="training YAML (e.g. conf/teacher_ar_demo.yaml)")
    p.add_argument("--exp", type=av.output_dir, help="experiment dir (e.g. exp/teacher_ar)")
    p.add_argument("--data", type=av.existing_dir,
                   metavar="DUMP", help="dump root with tokens/<split> and feats/<split>")
    p.add_argument("--token-list", type=av.text_file, help="tokens.txt (e.g. data/token_list/phoneme/tokens.txt)")
    p.add_argument("--devices", type=av.devices, help="devices per node: auto, N, or a list 0,1")
    p.add_argument("--num-nodes", type=av.positive_int, help="nodes (multi-node DDP)")
    p.add_argument("--strategy", help="Lightning strategy (auto, ddp, ...)")
    p.add_argument("--precision", type=av.precision, help="32-true, 16-mixed, bf16-mixed")
    p.add_argument("--accelerator", type=av.accelerator, help="auto, cpu, gpu")
    p.add_argument("--max-minutes", type=av.positive_float, help="training time limit in minutes (over resumes)")
    p.add_argument("--max-steps", type=av.positive_int, help="optimizer step limit")
    p.add_argument("--kd-mode", choices=("teacher_forced", "free_running"),
                   help="students: targets from the teacher dump (free_running: its generated mels, "
                        "sequence-level KD; teacher_forced: ground-truth mels with its durations)")
    p.add_argument("--teacher-dump", type=av.existing_dir,
                   metavar="DIR", help="students: teacher dump root with <split>/<kd_mode> "
                                                          "(default <DUMP>/teacher)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def resolve(args: argparse.Namespace):
    flags = [f"{key}={getattr(args, name)}" for name, key in FLAGS.items() if getattr(args, name) is not None]
    return load_train_config(args.config, list(args.overrides) + flags)


def main(args: argparse.Namespace) -> int:
    cfg = resolve(args)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.exp:
        raise ConfigError("--exp is required", field="--exp", hint="e.g. --exp exp/teacher_ar")
    last = run_training(cfg, args.exp)
    print(f"{args.exp}: last checkpoint {last}")
    return 0
