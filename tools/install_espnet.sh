#!/usr/bin/env bash
# The optional ESPnet extra: ESPnet2 (TTS training and inference code) and the analysis
# packages of ESPnet's MCD script (pysptk, fastdtw), installed into the speechkd venv
# WITHOUT letting pip resolve ESPnet's own requirements. ESPnet pins setuptools<74 and
# sentencepiece==0.2.0, pulls torch, hydra, SE and SSL packages and more; resolving them would
# replace torch 2.13 and other packages speechkd is tested with. So every package is installed
# with --no-deps, and the list below is exactly the modules that importing ESPnet's TTS entry
# points (espnet2.bin.tts_train, espnet2.bin.tts_inference, espnet2.tasks.tts) needs, found
# by importing them and adding what was missing until they imported.
#
# What this changes and what it leaves alone:
#   - a package already installed (at any version) is left as it is, never up- or downgraded;
#   - afterwards the script checks that torch's version and every package that was installed
#     before are unchanged (pip freeze), and that the entry points import; it fails otherwise;
#   - `pip check` then reports ESPnet's requirements that are deliberately not installed
#     (hydra-core, ci-sdr, pypinyin, ...): the TTS path never imports them.
# Two quirks, both ESPnet's dependencies':
#   - torchaudio: the PyPI wheel is a CUDA build for an older torch; its compiled extension
#     cannot load into torch 2.13+cpu and torchaudio then refuses to import. ESPnet's TTS path
#     imports torchaudio only through the enhancement layers (a chain of module-level imports
#     from espnet2.tasks.abs_task) and calls none of it, so the compiled libraries are removed;
#     torchaudio's loader skips absent libraries and the package imports in pure-Python mode.
#   - g2p_en (imported by espnet2.text.phoneme_tokenizer) tries to download NLTK data when it is
#     imported; offline it prints "[nltk_data] Error loading ..." and goes on. speechkd never uses
#     ESPnet's G2P (tokens come from speechkd's token lists).
# Idempotent: a second run with the same list returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${SPEECHKD_VENV:-$root/tools/venv}
py=$venv/bin/python
stamp=$venv/.speechkd-espnet-installed

# distribution==version  (module it provides, when the name differs)
pkgs=(
  espnet==202511
  espnet-tts-frontend==0.0.4       # tacotron_cleaner
  typeguard==4.6.1
  humanfriendly==10.0
  torch-complex==0.4.4             # torch_complex
  torchaudio==2.11.1               # see above: compiled libraries removed
  h5py==3.16.0
  kaldiio==2.18.1
  espnet-g2p-en==2.1.0.post1       # g2p_en (ESPnet's fork)
  nltk==3.10.4
  regex==2026.12.2
  inflect==7.6.0
  jaraco.functools==4.6.0          # jaraco (for inflect)
  more-itertools==11.2.1           # more_itertools (for inflect)
  jamo==0.4.1
  sentencepiece==0.2.0
  unidecode==1.4.0
  jaconv==0.5.0
  pysptk==1.0.1                    # ESPnet's MCD: SPTK mel-cepstrum (built from source)
  fastdtw==0.3.4                   # ESPnet's MCD: FastDTW
)
want=$(printf '%s\n' "${pkgs[@]}" | sha1sum | cut -d' ' -f1)

check_imports() {  # ESPnet prints that it falls back to its own attention (no flash_attn): dropped
  "$py" - <<'EOF' 2> >(grep -v -e '^\[nltk_data\]' -e 'pkg_resources' >&2) | { grep -v "Failed to import Flash Attention" || true; }
import warnings
warnings.simplefilter("ignore")
import espnet2.bin.tts_train, espnet2.bin.tts_inference, espnet2.tasks.tts  # noqa: F401
import espnet2.tts.transformer, espnet2.tts.fastspeech  # noqa: F401
import pysptk, fastdtw  # noqa: F401
EOF
}

[ -x "$py" ] || { echo "install_espnet: no venv at $venv (run tools/install.sh first)" >&2; exit 2; }
present() {  # cheap: the packages are findable (importing ESPnet takes ~10 s)
  "$py" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("espnet2", "typeguard", "pysptk", "fastdtw")))'
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && present; then
  echo "install_espnet: ESPnet extra up to date ($venv)"
  exit 0
fi

before=$(mktemp); after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT
"$py" -m pip freeze --all > "$before"
torch_before=$("$py" -c 'import torch; print(torch.__version__)')

todo=()
for spec in "${pkgs[@]}"; do
  name=${spec%%==*}
  if "$py" -m pip show -q "$name" >/dev/null 2>&1; then
    continue  # already there: keep whatever version the venv has
  fi
  todo+=("$spec")
done
if [ ${#todo[@]} -gt 0 ]; then
  echo "install_espnet: installing ${todo[*]}"
  "$venv/bin/pip" install -q --no-deps "${todo[@]}" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi

# torchaudio's compiled extension (see the notes above).
ta=$("$py" -c 'import importlib.util as u, os; s = u.find_spec("torchaudio"); print(os.path.dirname(s.origin))')
rm -f "$ta"/lib/*.so

"$py" -m pip freeze --all > "$after"
torch_after=$("$py" -c 'import torch; print(torch.__version__)')
if [ "$torch_before" != "$torch_after" ]; then
  echo "install_espnet: torch changed from $torch_before to $torch_after; restore it (tools/install.sh)" >&2
  exit 1
fi
changed=$(comm -23 <(sort "$before") <(sort "$after") || true)
if [ -n "$changed" ]; then
  echo "install_espnet: these packages changed or vanished, which the ESPnet extra must not do:" >&2
  echo "$changed" >&2
  exit 1
fi
if ! check_imports; then
  echo "install_espnet: ESPnet's TTS modules do not import (see above); a module missing from the list?" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "install_espnet: done (torch $torch_after unchanged; $(comm -13 <(sort "$before") <(sort "$after") | wc -l) packages added)"
