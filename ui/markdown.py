"""Text from users and files, shown literally where Streamlit renders Markdown."""

from __future__ import annotations

import string

ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation} | {chr(c): " " for c in (*range(32), 127)})


def plain(text: str) -> str:
    """``text`` for messages, captions, labels and metric values, which Streamlit renders as Markdown.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of them), so
    no file name, path, query or error message can form a link, an image, an autolink (``www.x.com``,
    ``a@b.c``), HTML, an entity or a Streamlit directive (``:red[…]``, ``:material/…:``); control
    characters, line breaks included, become spaces.
    """
    return text.translate(ESCAPES)
