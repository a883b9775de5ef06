"""Who may use the app: the holder of the token ``assetlens ui`` prints, as in Jupyter.

The server listens on 127.0.0.1, but a page on any site can reach it through DNS rebinding (its
Origin then equals the Host header), and every local account can open the port. The token travels
from the command to the app in the environment (argv is readable by every local user) and from the
browser in the URL's query string.
"""

from __future__ import annotations

import hmac
import secrets

TOKEN_VARIABLE = "ASSETLENS_UI_TOKEN"
TOKEN_PARAMETER = "token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (bytes: ``hmac.compare_digest`` refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))
