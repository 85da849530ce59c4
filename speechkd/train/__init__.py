"""Training infrastructure shared by every acoustic model (Lightning).

- :mod:`speechkd.train.runner`  ``run(job, exp_dir)``: THE training loop of every family (acoustic,
  diffusion, progressive rounds, vocoder, SE): threads, seed, resume (weights_only, damaged
  last.ckpt fallback), the one ``L.Trainer``, the TimeBudget callback, SIGTERM
- :mod:`speechkd.train.config`  TrainConfig: model name + its typed Config, data, optim, and the one
  TrainerConfig every family uses
- :mod:`speechkd.train.data`    (tokens, feats) pairs joined by utterance id, frame-bucketed batches
                                (torch only: the teacher dump reads splits without Lightning)
- :mod:`speechkd.train.datamodule` TTSDataModule: those splits as Lightning's dataloaders
- :mod:`speechkd.train.module`  TTSTask: losses, Noam schedule, validation metrics and plots
- :mod:`speechkd.train.exp`     exp dirs: metrics.csv, train.log, atomic checkpoints (the writer side;
                                reading them back is :mod:`speechkd.checkpoints`, without Lightning)
- :mod:`speechkd.train.trainer` ``run_training``: the acoustic job of the runner
- :mod:`speechkd.train.cli`     ``speechkd train``

A new model: one file in speechkd/models/ satisfying :class:`speechkd.models.AcousticModel`,
registered in :data:`speechkd.models.MODELS`.
``TTSDataModule(keys=...)`` adds further arrays of the feature dump (lf0, vuv, energy) to the
batch, padded by :func:`speechkd.train.data.collate`. Students (a model class whose ``batch_needs``
names ``durations``) also read the teacher dump ``<teacher_dump_dir>/<split>/<data.kd_mode>/``
(durations, free-running mels; token pitch/energy for FastSpeech 2), and TTSTask passes those
batch entries to ``forward``.
"""
