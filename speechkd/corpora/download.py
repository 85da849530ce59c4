"""Fetching a published corpus archive: resumable download, checksum, safe unpacking.

``speechkd download NAME --dest DIR`` downloads the official archive into ``DIR`` (a partial
``<archive>.part`` left by an interrupted run is resumed with an HTTP Range request), checks
its SHA-256 against the pinned value (a mismatch deletes the download and is an error), and
unpacks it into ``DIR`` (tar members are filtered by Python's ``data`` filter, zip members
must stay inside the target: an archive cannot write outside ``DIR``). A corpus already
unpacked (its marker file present) is not downloaded again.

Pinned archives are those whose checksum is published by more than the corpus host alone
(LJSpeech: torchaudio and others; VCTK 0.92: torchaudio). Others (LibriTTS-R, VoiceBank-DEMAND)
can be fetched with ``--url`` and ``--sha256`` given by the user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One published archive: where it is, its SHA-256, and what unpacking it creates."""

    url: str
    sha256: str
    unpack_into: str  # subdir of --dest the members go into ("" = --dest itself)
    marker: str       # a file (relative to --dest) that exists once the corpus is unpacked


# corpus -> its official archive. Explicit, greppable, no plugins.
ARCHIVES: dict[str, Archive] = {
    "ljspeech": Archive("https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
                        "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5",
                        "", "LJSpeech-1.1/metadata.csv"),
    "vctk": Archive("https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip",
                    "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c",
                    "VCTK-Corpus-0.92", "VCTK-Corpus-0.92/speaker-info.txt"),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, path: Path, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path`` (resuming ``path.part``) and check its SHA-256."""
    path = Path(path)
    if path.exists():
        if sha256_of(path) == sha256:
            logger.info("%s: already downloaded, checksum OK", path)
            return path
        raise SpeechkdError(f"exists with another SHA-256 than {sha256}", path=str(path),
                            hint="delete it (a different file, or a corrupt download) and rerun")
    part = path.with_name(path.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            if start and r.status != 206:  # the server ignored the range: start over
                logger.info("%s: the server cannot resume; downloading from the start", url)
                start = 0
            elif start:
                logger.info("%s: resuming at byte %d", url, start)
            with open(part, "ab" if start else "wb") as f:
                for block in iter(lambda: r.read(CHUNK), b""):
                    f.write(block)
    except urllib.error.HTTPError as e:
        if not (e.code == 416 and start):  # 416 after a complete .part: nothing left to fetch
            raise SpeechkdError(f"download failed: HTTP {e.code} {e.reason}", path=url,
                                hint="check the URL; rerun to resume a partial download") from None
    except (urllib.error.URLError, OSError) as e:
        raise SpeechkdError(f"download failed ({getattr(e, 'reason', e)}); {part} keeps what arrived",
                            path=url, hint="rerun to resume") from None
    digest = sha256_of(part)
    if digest != sha256:
        part.unlink()
        raise SpeechkdError(f"SHA-256 is {digest}, expected {sha256}; the download was deleted", path=url,
                            hint="rerun to download again; if it persists the archive changed upstream")
    os.replace(part, path)
    return path


def unpack(archive: Path, dest: Path) -> None:
    """Unpack a .tar(.gz/.bz2/.xz) or .zip into ``dest``; no member may land outside ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                target = (root / name).resolve()
                if target != root and root not in target.parents:
                    raise SpeechkdError(f"member '{name}' would be written outside {dest}", path=str(archive))
            z.extractall(root)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            try:
                t.extractall(root, filter="data")
            except tarfile.FilterError as e:
                raise SpeechkdError(f"unsafe member refused ({e})", path=str(archive)) from None
    else:
        raise SpeechkdError("neither a tar nor a zip archive", path=str(archive))


def download(name: str, dest: str | os.PathLike, *, url: str | None = None, sha256: str | None = None) -> Path:
    """Fetch and unpack corpus ``name`` into ``dest``; returns the unpacked corpus's marker file."""
    pinned = ARCHIVES.get(name)
    if pinned is None and not (url and sha256):
        raise SpeechkdError(f"no pinned archive for '{name}' (pinned: {', '.join(sorted(ARCHIVES))})",
                            hint="give the archive's --url and its --sha256")
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower())):
        raise SpeechkdError(f"not a SHA-256 (64 hex digits): '{sha256}'", field="--sha256")
    arch = Archive(url or pinned.url, (sha256 or pinned.sha256).lower(),
                   pinned.unpack_into if pinned else "", pinned.marker if pinned else "")
    dest = Path(dest)
    if arch.marker and (dest / arch.marker).exists():
        logger.info("%s: already unpacked in %s", name, dest)
        return dest / arch.marker
    dest.mkdir(parents=True, exist_ok=True)
    file = dest / os.path.basename(urllib.parse.urlparse(arch.url).path)
    if not file.name or file.name in (".", ".."):
        raise SpeechkdError("the URL names no archive file", path=arch.url, field="--url")
    fetch(arch.url, file, arch.sha256)
    unpack(file, dest / arch.unpack_into)
    if arch.marker and not (dest / arch.marker).exists():
        raise SpeechkdError(f"unpacked, but {arch.marker} is not there: not the expected archive", path=str(file))
    logger.info("%s: %s unpacked into %s", name, file.name, dest / arch.unpack_into)
    return dest / arch.marker if arch.marker else dest
