"""``speechkd distill <method>``: distillation algorithms that train students from a trained teacher.

Methods (explicit registry):
  progressive  ProDiff / Salimans & Ho progressive step halving of a diffusion model (recipe stage 8)::

      speechkd distill progressive --teacher exp/diffusion_8 --rounds 2 --config conf/progressive_demo.yaml

  writes exp/diffusion_4, exp/diffusion_2 (each its own exp dir, resumable; done rounds are skipped).

Settings: ProgressiveConfig defaults <- ``--config`` YAML <- ``KEY=VALUE`` overrides (e.g.
``optim.lr=1e-4 trainer.max_steps=500``) <- the flags. ``--print-config`` prints the resolved config.
"""

from __future__ import annotations

import argparse

from speechkd.config import _merge, dump_config, from_dict, parse_overrides, read_yaml

# flag -> config key (per round)
FLAGS = {"rounds": "rounds", "max_minutes": "trainer.max_minutes", "max_steps": "trainer.max_steps",
         "devices": "trainer.devices", "accelerator": "trainer.accelerator", "precision": "trainer.precision",
         "strategy": "trainer.strategy", "num_nodes": "trainer.num_nodes"}
# flag -> DataConfig field replacing the teacher's
DATA_FLAGS = {"data": "dump_dir", "token_list": "token_list", "teacher_dump": "teacher_dump_dir"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="method", metavar="METHOD")
    sub.required = True
    p = sub.add_parser("progressive", help="progressive step halving of a diffusion model (ProDiff)",
                       description="progressive step halving of a diffusion model (ProDiff): N -> N/2 -> ...")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted ProgressiveConfig overrides")
    p.add_argument("--teacher", help="exp dir of the N-step diffusion teacher (e.g. exp/diffusion_8)")
    p.add_argument("--config", help="progressive YAML (e.g. conf/progressive_demo.yaml)")
    p.add_argument("--rounds", type=int, help="rounds K (N -> N/2^K steps)")
    p.add_argument("--exp-root", help="where exp/<prefix>_<k> dirs go; default: the teacher's parent dir")
    p.add_argument("--data", metavar="DUMP", help="dump root (default: the teacher's data.dump_dir)")
    p.add_argument("--token-list", help="tokens.txt (default: the teacher's)")
    p.add_argument("--teacher-dump", metavar="DIR", help="durations dump root (default: the teacher's)")
    p.add_argument("--max-minutes", type=float, help="training minutes per round")
    p.add_argument("--max-steps", type=int, help="optimizer steps per round")
    p.add_argument("--devices", help="devices per node: auto, N, or a list 0,1")
    p.add_argument("--accelerator", help="auto, cpu, gpu")
    p.add_argument("--precision", help="32-true, 16-mixed, bf16-mixed")
    p.add_argument("--strategy", help="Lightning strategy (auto, ddp, ...)")
    p.add_argument("--num-nodes", type=int, help="nodes (multi-node DDP)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def resolve(args: argparse.Namespace):
    from speechkd.distill.progressive import ProgressiveConfig

    data = read_yaml(args.config) if args.config else {}
    flags = [f"{key}={getattr(args, name)}" for name, key in FLAGS.items() if getattr(args, name) is not None]
    data = _merge(data, parse_overrides(list(args.overrides) + flags))
    return from_dict(ProgressiveConfig, data, source=args.config or "<overrides>")


def main(args: argparse.Namespace) -> int:
    from speechkd.errors import ConfigError

    cfg = resolve(args)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.teacher:
        raise ConfigError("--teacher is required", field="--teacher", hint="e.g. --teacher exp/diffusion_8")
    from speechkd.distill.progressive import run_progressive

    data = {key: getattr(args, name) for name, key in DATA_FLAGS.items() if getattr(args, name) is not None}
    for d in run_progressive(args.teacher, cfg, exp_root=args.exp_root, data_overrides=data):
        print(d)
    return 0
