"""User-facing errors.

Anything a user can cause (bad audio, bad text, bad configs, missing files)
raises :class:`SpeechkdError` with a message naming the file, the utterance id
and the field, and saying what to do. The CLI prints such errors as one line
(no traceback) and exits with status 2.
"""

from __future__ import annotations


class SpeechkdError(Exception):
    """An error caused by the user's input, with an actionable message."""

    def __init__(self, message: str, *, path: str | None = None, utt: str | None = None,
                 field: str | None = None, hint: str | None = None):
        self.path, self.utt, self.field, self.hint = path, utt, field, hint
        where = []
        if path is not None:
            where.append(f"{path}")
        if utt is not None:
            where.append(f"utterance '{utt}'")
        if field is not None:
            where.append(f"field '{field}'")
        text = (": ".join([", ".join(where), message]) if where else message)
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ConfigError(SpeechkdError):
    """A malformed or inconsistent configuration file or override."""


class AudioError(SpeechkdError):
    """Audio that cannot be used: unreadable, empty, wrong rate or channels."""


class DataDirError(SpeechkdError):
    """A Kaldi data directory that violates the data-dir contract."""


class FeatureMismatchError(SpeechkdError):
    """Two FeatureConfigs that must agree do not."""
