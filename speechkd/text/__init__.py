"""Text frontend: normalisation, G2P (espeak-ng through phonemizer), token lists."""

from speechkd.text.frontend import Frontend, normalize_text, text_to_tokens
from speechkd.text.tokens import TokenList, UnknownSymbolError, build_token_list

__all__ = ["Frontend", "normalize_text", "text_to_tokens", "TokenList", "UnknownSymbolError",
           "build_token_list"]
