"""Speech enhancement without clean speech: mixing, models, noisy-target training, inference.

DESIGN.md, "Noisy/enhanced-target SE" and "Algorithm notes": a noisy-target
teacher (NyTT, Fujimura et al. 2021) trained on noisy speech y plus extra noise,
remix students (:mod:`speechkd.enhance.remix`) and teacher/student inference S(T(y)).
"""
