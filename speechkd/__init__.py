"""speechkd: speech and TTS knowledge distillation toolkit."""

from speechkd.utils.threads import passive_openmp

__version__ = "0.1.0"

# before anything imports torch: OpenMP reads its wait policy once, when it loads (utils/threads.py)
passive_openmp()
