"""``speechkd distill <method>``: distillation algorithms that train students from a trained teacher.

Methods (explicit registry):
  progressive  ProDiff / Salimans & Ho progressive step halving of a diffusion model (recipe stage 8)::

      speechkd distill progressive --teacher exp/diffusion_8 --rounds 2 --config conf/progressive_demo.yaml

  writes exp/diffusion_4, exp/diffusion_2 (each its own exp dir, resumable; done rounds are skipped).

  compare      the teacher sampled with k steps vs the k-step students, paired, on mels of a split with
               a teacher dump (:mod:`speechkd.distill.compare`)::

      speechkd distill compare --exps exp/diffusion_8 exp/diffusion_4 exp/diffusion_2 --split dev \
          --out exp/eval/diffusion_steps

Settings: ProgressiveConfig defaults <- ``--config`` YAML <- ``KEY=VALUE`` overrides (e.g.
``optim.lr=1e-4 trainer.max_steps=500``) <- the flags. ``--print-config`` prints the resolved config.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import torch

from speechkd.checkpoints import load_model
from speechkd.config import dump_config, load_typed
from speechkd.distill import compare as ds
from speechkd.distill.progressive import ProgressiveConfig, run_progressive
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.config import check_compatible
from speechkd.models.diffusion import DiffusionTTS
from speechkd.train.datamodule import TTSDataModule
from speechkd.train.config import loaded_train_config
from speechkd.utils.io import atomic_write_json, atomic_write_text
from speechkd.utils import args as av

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
    p.add_argument("--teacher", type=av.existing_dir,
                   help="exp dir of the N-step diffusion teacher (e.g. exp/diffusion_8)")
    p.add_argument("--config", type=av.text_file, help="progressive YAML (e.g. conf/progressive_demo.yaml)")
    p.add_argument("--rounds", type=av.int_range(1, 16), help="rounds K (N -> N/2^K steps)")
    p.add_argument("--exp-root", type=av.output_dir,
                   help="where exp/<prefix>_<k> dirs go; default: the teacher's parent dir")
    p.add_argument("--data", type=av.existing_dir,
                   metavar="DUMP", help="dump root (default: the teacher's data.dump_dir)")
    p.add_argument("--token-list", type=av.text_file, help="tokens.txt (default: the teacher's)")
    p.add_argument("--teacher-dump", type=av.existing_dir,
                   metavar="DIR", help="durations dump root (default: the teacher's)")
    p.add_argument("--max-minutes", type=av.positive_float, help="training minutes per round")
    p.add_argument("--max-steps", type=av.positive_int, help="optimizer steps per round")
    p.add_argument("--devices", type=av.devices, help="devices per node: auto, N, or a list 0,1")
    p.add_argument("--accelerator", type=av.accelerator, help="auto, cpu, gpu")
    p.add_argument("--precision", type=av.precision, help="32-true, 16-mixed, bf16-mixed")
    p.add_argument("--strategy", help="Lightning strategy (auto, ddp, ...)")
    p.add_argument("--num-nodes", type=av.positive_int, help="nodes (multi-node DDP)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    p = sub.add_parser("compare", help="teacher at k steps vs k-step students on mels (paired, same noise)",
                       description="teacher at k steps vs k-step students on mels (paired, same noise)")
    p.add_argument("--exps", type=av.existing_path,
                   nargs="+", required=True, help="exp dirs of the teacher and its students")
    p.add_argument("--split", type=av.name, default="dev", help="split with a teacher dump (durations): dev or train")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--num-utts", type=av.nonneg_int, default=0, help="the first N utterances of the split; 0 = all")
    p.add_argument("--data", type=av.existing_dir,
                   metavar="DUMP", help="dump root (default: the teacher's data.dump_dir)")
    p.add_argument("--teacher-dump", type=av.existing_dir,
                   metavar="DIR", help="durations dump root (default: the teacher's)")
    p.add_argument("--batch-frames", type=av.positive_int, default=3000, help="mel frames per batch")
    p.add_argument("--seed", type=av.seed, default=0, help="seed of the initial noise (shared by every system)")
    p.add_argument("--threads", type=av.threads, default=0, help="torch CPU threads; 0 = torch's default")


def resolve(args: argparse.Namespace):
    flags = [f"{key}={getattr(args, name)}" for name, key in FLAGS.items() if getattr(args, name) is not None]
    return load_typed(ProgressiveConfig, args.config, list(args.overrides) + flags)


def compare(args: argparse.Namespace) -> int:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    loaded, dirs = {}, {}
    for e in args.exps:
        lm = load_model(e)
        if not isinstance(lm.model, DiffusionTTS):
            raise SpeechkdError(f"a {lm.name!r} model, not a diffusion model", path=e, field="--exps")
        if lm.model.cfg.steps in loaded:
            raise SpeechkdError(f"two models with {lm.model.cfg.steps} steps", path=e, field="--exps")
        loaded[lm.model.cfg.steps] = lm
        dirs[lm.model.cfg.steps] = os.path.normpath(e)
    teacher = loaded[max(loaded)]
    for k, lm in loaded.items():
        check_compatible(teacher.feature_config, lm.feature_config, teacher.path, lm.path)
        if lm.token_list.tokens != teacher.token_list.tokens:
            raise SpeechkdError("token list differs from the teacher's", path=lm.path, field="--exps")
    # the teacher's data settings (its keep_filtered included), on the requested split
    over = {"dev_set": args.split, "max_dev_utts": args.num_utts, "batch_frames": args.batch_frames}
    if args.data:
        over["dump_dir"] = args.data
    if args.teacher_dump:
        over["teacher_dump_dir"] = args.teacher_dump
    dm = TTSDataModule(dataclasses.replace(loaded_train_config(teacher).data, **over), needs=teacher.model.batch_needs)
    dm.setup()
    check_compatible(teacher.feature_config, dm.feature_config, teacher.path, "the dump")
    systems = ds.systems_of({k: lm.model for k, lm in loaded.items()})
    batches = [{**b, "mels": teacher.normalize(b["mels"])} for b in dm.val_dataloader()]
    res = ds.evaluate(systems, batches, seed=args.seed, to_logmel=teacher.denormalize)
    summary = ds.summarize(res)
    # each student against its round's teacher (the model with twice its steps), where that was given
    rounds = [(f"student@{k}", lm.model, loaded[2 * k].model)
              for k, lm in sorted(loaded.items(), reverse=True) if k != max(loaded) and 2 * k in loaded]
    objective = ds.summarize(ds.distillation_l1(rounds, batches, seed=args.seed)) if rounds else {}
    utts = [u.utt for u in dm.dev_utts]
    title = f"Diffusion steps: teacher {dirs[max(dirs)]} at k steps vs distilled students ({args.split})"
    atomic_write_json(os.path.join(args.out, "results.json"),
                      {"title": title, "split": args.split, "utts": utts, "systems": summary, "per_utt": res,
                       "distillation_l1": objective,
                       "exps": {str(k): d for k, d in sorted(dirs.items(), reverse=True)}})
    text = ds.markdown(summary, title, len(utts))
    if objective:
        text += "\n" + ds.distillation_markdown(objective)
    atomic_write_text(os.path.join(args.out, "results.md"), text)
    print(text, end="")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.method == "compare":
        return compare(args)
    cfg = resolve(args)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.teacher:
        raise ConfigError("--teacher is required", field="--teacher", hint="e.g. --teacher exp/diffusion_8")
    data = {key: getattr(args, name) for name, key in DATA_FLAGS.items() if getattr(args, name) is not None}
    for d in run_progressive(args.teacher, cfg, exp_root=args.exp_root, data_overrides=data):
        print(d)
    return 0
