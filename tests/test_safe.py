"""ui.safe.plain: text from a link or upload renders as its own characters, never as markup.

The rendering itself is checked in Chromium (tests/test_browser.py); here, that the Markdown
source it produces reads back as the original text under CommonMark's rules: outside code spans
every punctuation character is backslash-escaped, and words that Streamlit would turn into links
sit inside code spans.
"""
import re
import string

from hypothesis import given, settings, strategies as st

from ui.safe import plain

_SPAN = re.compile(r"(`+)( ?)(.*?)\2\1(?!`)")


def _read_back(md: str) -> str:
    """Undo plain(): code spans give their content, backslash escapes their character."""
    out, pos = [], 0
    for m in _SPAN.finditer(md):
        out.append(_unescape(md[pos:m.start()]))
        out.append(m.group(3))
        pos = m.end()
    out.append(_unescape(md[pos:]))
    return "".join(out)


def _unescape(s: str) -> str:
    assert not re.search(r"(?<!\\)(?:\\\\)*[" + re.escape(string.punctuation.replace("\\", "")) + "]",
                         s.replace("\\\\", "")), f"unescaped punctuation in {s!r}"
    return re.sub(r"\\(.)", r"\1", s)


def test_markup_payloads_read_back_as_text():
    for p in ["[click me](https://evil.example/p)", "**bold**", "$x^2$", ":red[x]", "<b>x</b>",
              "www.evil.example", "a@b.co", "`tick`https://x.y`", "# h", "![i](http://e/i.png)"]:
        assert _read_back(plain(p)) == p


def test_links_only_inside_code_spans():
    md = plain("see https://evil.example/p and www.evil.example or mail@evil.example")
    outside = _SPAN.sub("", md)
    assert "://" not in outside and "www" not in outside and "@" not in outside
    assert _read_back(md) == "see https://evil.example/p and www.evil.example or mail@evil.example"


def test_control_characters_are_shown_not_obeyed():
    md = plain("a\nb\r\x00c\u202ed")
    assert "\n" not in md and "\r" not in md and "\x00" not in md and "\u202e" not in md
    assert _read_back(md) == "a\\x0ab\\x0d\\x00c\\u202ed"


def test_a_string_the_checker_must_reject():
    # The read-back check can fail: raw markup is refused.
    try:
        _read_back("**bold**")
    except AssertionError:
        return
    raise AssertionError("unescaped markup passed the check")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp"))))
def test_any_printable_text_reads_back_exactly(s):
    assert _read_back(plain(s)) == s
