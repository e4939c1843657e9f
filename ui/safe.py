"""Text from outside (a link, an upload, a form) shown as plain text, never as markup.

Streamlit renders the body of st.markdown, st.warning, st.error, st.info and st.caption as
Markdown with extras: links (also bare `https://…` and `www.…`), `$…$` KaTeX, `:red[…]` colours,
`:icon:` shortcodes, headings, lists. A message that quotes a visitor's words must not let those
words become a link inside the app's own warning box. CommonMark lets every ASCII punctuation
character be escaped with a backslash, which shows the character itself; escaping all of them
turns any string into literal text. Control characters (newlines start new Markdown blocks) are
shown as visible escapes.
"""
from __future__ import annotations

import re
import string

_ESCAPE = {ord(c): "\\" + c for c in string.punctuation}
_CONTROL = {i: f"\\x{i:02x}" for i in list(range(32)) + [127]}
# Also C1 controls, bidi overrides and line/paragraph separators: invisible, or reorder text.
_CONTROL.update({i: f"\\u{i:04x}" for i in list(range(0x80, 0xA0)) + [0x2028, 0x2029]
                 + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A))})


# Streamlit turns bare addresses into links after parsing (GFM autolink literals work on the
# parsed text, so a backslash escape does not stop them): `http://…`, `www.…`, `a@b.c`,
# `mailto:…`. Words holding such a pattern go into a code span, which is never linked.
_LINKY = re.compile(r"\S*(?:://|www\.|@|mailto:|xmpp:)\S*", re.IGNORECASE)


def plain(text: object) -> str:
    """`text` as Markdown source that renders as the characters of `text`: no links, no
    emphasis, math, colours, icons or HTML (checked in Chromium by tests/test_browser.py)."""
    s = str(text).translate(_CONTROL)
    out, pos = [], 0
    for m in _LINKY.finditer(s):
        out += [s[pos:m.start()].translate(_ESCAPE), _code(m.group())]
        pos = m.end()
    out.append(s[pos:].translate(_ESCAPE))
    return "".join(out)


def _code(word: str) -> str:
    """A code span showing `word` literally (a fence longer than any backtick run inside)."""
    fence = "`" * (max((len(r) for r in re.findall("`+", word)), default=0) + 1)
    pad = " " if word.startswith("`") or word.endswith("`") else ""
    return f"{fence}{pad}{word}{pad}{fence}"


def lines(items: list[str]) -> str:
    """Several plain messages as one Markdown bullet list (each item escaped)."""
    return "\n".join(f"- {plain(i)}" for i in items)
