"""Built-in corpora, generated offline from Debian packages (docs/data-formats.md, "Built-in corpora").

``speechkd corpus NAME --out DIR``: Kaldi data dirs DIR/{train,dev,test} (noise:
DIR/{in_domain,extraneous}), 16 kHz mono 16-bit wavs under DIR/wav and DIR/corpus.json.
Each builder has the signature ``build(out, *, num_utts, seed, nj, num_dev, num_test) -> dict``
and returns the corpus.json manifest.

``speechkd prepare NAME --db-root DIR --out DIR``: Kaldi data dirs of a published corpus
already on disk (files at the recipe's rate read in place, the others resampled once). Each
reader has the signature ``prepare(db_root, out, *, rate, ...) -> dict`` and returns the
prepare.json manifest; format-faithful replicas for tests are in :mod:`speechkd.testing.replicas`.
"""

from __future__ import annotations

from typing import Callable

from speechkd.corpora import asterisk_en, libritts_r, ljspeech, mini_en, mini_multi, noise, vctk, voicebank_demand

# name -> builder. Explicit, greppable, no plugins.
CORPORA: dict[str, Callable[..., dict]] = {
    "mini_en": mini_en.build,
    "mini_multi": mini_multi.build,
    "asterisk_en": asterisk_en.build,
    "noise": noise.build,
}

# name -> reader of a published corpus. Explicit, greppable, no plugins.
PUBLIC: dict[str, Callable[..., dict]] = {
    "ljspeech": ljspeech.prepare,
    "vctk": vctk.prepare,
    "libritts_r": libritts_r.prepare,
    "voicebank_demand": voicebank_demand.prepare,
}
