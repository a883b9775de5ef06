"""Text from users and files, shown literally where Streamlit renders Markdown."""

from __future__ import annotations

import re
import string

# Undecodable bytes of a file name (lone surrogates, as os.fsdecode gives them) cannot travel to the
# browser (protobuf refuses them): each shows as U+FFFD.
UNDECODABLE = {chr(c): "\ufffd" for c in range(0xDC80, 0xDD00)}
ESCAPES = str.maketrans(
    {c: "\\" + c for c in string.punctuation} | {chr(c): " " for c in (*range(32), 127)} | UNDECODABLE
)
WORD_JOINER = "\u2060"
# Where GitHub-flavoured Markdown makes links of plain text (www.x, scheme://x, a@b.c): its extension finds
# them in the text after escapes are resolved, so only a character between the parts keeps them text.
AUTOLINK_SEAMS = re.compile(r"(?<=www)(?=\.)|(?<=:)(?=//)|(?=@)", re.IGNORECASE)


def plain(text: str) -> str:
    """``text`` for messages, captions, labels and metric values, which Streamlit renders as Markdown.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of them), so
    no file name, path, query or error message can form a link, an image, HTML, an entity or a
    Streamlit directive (``:red[…]``, ``:material/…:``); an invisible word joiner splits what would
    become an autolink; control characters, line breaks included, become spaces; an undecodable
    byte of a file name becomes U+FFFD.
    """
    return AUTOLINK_SEAMS.sub(WORD_JOINER, text).translate(ESCAPES)
