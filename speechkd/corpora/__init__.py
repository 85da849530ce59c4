"""Built-in corpora, generated offline from Debian packages (docs/data-formats.md, "Built-in corpora").

``speechkd corpus NAME --out DIR``: Kaldi data dirs DIR/{train,dev,test} (noise:
DIR/{in_domain,extraneous}), 16 kHz mono 16-bit wavs under DIR/wav and DIR/corpus.json.
Each builder has the signature ``build(out, *, num_utts, seed, nj, num_dev, num_test) -> dict``
and returns the corpus.json manifest.
"""

from __future__ import annotations

from typing import Callable

from speechkd.corpora import asterisk_en, mini_en, mini_multi, noise

# name -> builder. Explicit, greppable, no plugins.
CORPORA: dict[str, Callable[..., dict]] = {
    "mini_en": mini_en.build,
    "mini_multi": mini_multi.build,
    "asterisk_en": asterisk_en.build,
    "noise": noise.build,
}
