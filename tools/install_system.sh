#!/usr/bin/env bash
# Installs the Debian packages speechkd needs. Idempotent: packages already
# present are skipped without touching the network.
set -euo pipefail

pkgs=(
  espeak-ng libespeak-ng1            # phonemizer backend
  flite                              # synthetic voices (slt, kal16, awb, rms)
  festival festvox-kallpc16k festvox-kdlpc16k
  sox libsndfile1 ffmpeg             # audio tools; ffmpeg decodes G.722
  asterisk-core-sounds-en-g722 asterisk-core-sounds-en   # real speech + transcripts
  wordnet-base                       # prompt sentences
  sonic-pi-samples lmms-common sound-theme-freedesktop    # freely licensed noise / event sounds (licence per clip in utt2license)
  chromium                           # headless browser of the listening-page tests (driven by playwright)
  gcc                                # builds pysptk from source (the ESPnet extra's MCD, tools/install_espnet.sh)
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_system: all ${#pkgs[@]} packages present"
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install_system: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
