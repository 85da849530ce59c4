"""Speech enhancement without clean speech: mixing, models, noisy-target training, inference.

docs/architecture.md, "Speech enhancement": a noisy-target
teacher (NyTT, Fujimura et al. 2021) trained on noisy speech y plus extra noise,
remix students (:mod:`speechkd.enhance.remix`) and teacher/student inference S(T(y)).
"""
