"""Take secrets out of log text before it is stored or sent anywhere.

Two kinds: the exact values the service was configured with (`JARVIS_API_KEY`, the HF token,
the OpenAI key) wherever they appear, and things that look like credentials whatever their
value: Authorization headers, `Bearer …`, HF tokens, `sk-…` keys, `api_key=…` parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"

# Header values: `Authorization: Bearer x`, `{'authorization': 'Basic x'}`, `(b'authorization', b'x')`.
_AUTH_HEADER = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization\b["']?          # the header name, maybe quoted
      (?:\s*[:=]\s*|["']?\s*,\s*)                # `: ` / `=` / the `', ` of a (name, value) pair
      (?:b?["'])?                                # maybe a (bytes) quote
      (?:(?:bearer|basic|digest|token|negotiate)\s+)?)  # keep the scheme, drop the credentials
    [^"'\r\n]+                                   # the value, to the quote or end of line
    """
)
# `Bearer x` outside a header too (an httpx error message, a curl line pasted into a log).
# `bearer.<key>` is how a browser WebSocket offers its key (as a subprotocol).
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer)(\s+|\.)[A-Za-z0-9._~+/=-]{8,}")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
# `?api_key=…&token=…` in URLs and `key=value` text; `max_tokens=5` is left alone.
_SECRET_PARAM = re.compile(
    r"""(?ix)
    (?<![A-Za-z0-9_-])
    ((?:api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|token|
        hf[_-]?token|password|passwd|secret|client[_-]?secret|key|sig|signature|x-amz-signature)
     =)
    [^&\s#"',;]+
    """
)
# `"api_key": "…"` in JSON or dict reprs (keys naming a token, secret, password or key).
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (["'][\w-]*(?:api[_-]?key|token|secret|password|passwd|credential)s?["']\s*:\s*b?["'])
    [^"']*
    """
)


class Redactor:
    """Replaces secrets in text with `[REDACTED]`.

    `secrets` are exact values to remove (configured keys and tokens); empty ones are ignored.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if not secret or not secret.strip():
                continue
            secret = secret.strip()
            # as written, and as it looks inside a URL (percent- or plus-encoded)
            values.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
        # longest first, so a secret that contains another is removed whole
        ordered = sorted(values, key=len, reverse=True)
        self._exact = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def text(self, value: str) -> str:
        """`value` with every secret replaced by `[REDACTED]`."""
        if self._exact is not None:
            value = self._exact.sub(MASK, value)
        value = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, value)
        value = _SCHEME_TOKEN.sub(lambda m: m.group(1) + m.group(2) + MASK, value)
        value = _HF_TOKEN.sub(MASK, value)
        value = _SK_KEY.sub(MASK, value)
        value = _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, value)
        value = _SECRET_FIELD.sub(lambda m: m.group(1) + MASK, value)
        return value

    def value(self, value: object, *, depth: int = 0) -> object:
        """A JSON-ready copy of `value` with secrets removed from every string in it.

        Mapping keys that name a credential (`authorization`, `api_key`, `token`, …) have their
        whole value masked. Anything that is not JSON becomes its redacted `str()`.
        """
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            return self.text(value)
        if depth >= 6:
            return self.text(repr(value))
        if isinstance(value, dict):
            out = {}
            for key, item in list(value.items())[:200]:
                name = self.text(str(key))
                masked = is_secret_name(name) and item not in (None, "")
                out[name] = MASK if masked else self.value(item, depth=depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item, depth=depth + 1) for item in list(value)[:200]]
        return self.text(str(value))


_SECRET_NAME = re.compile(
    r"(?i)^(?:.*[_-])?(?:authorization|proxy-authorization|api[_-]?key|apikey|token|secret|password|passwd|"
    r"cookie|set-cookie|credentials?|hf[_-]?token)$"
)


def is_secret_name(name: str) -> bool:
    """Whether a field or header called `name` holds a credential (`api_key`, `X-Auth-Token`, …)."""
    return bool(_SECRET_NAME.match(name.strip()))
