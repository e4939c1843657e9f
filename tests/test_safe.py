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

# A code span (a backslash-escaped backtick opens none, as in CommonMark).
_SPAN = re.compile(r"(?<![\\`])(`+)( ?)(.*?)\2\1(?!`)")


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


# ---- on the page: every query parameter and an upload, through the real app (AppTest) ----------

PAYLOAD = "[x](https://evil.example/p) **b** $k^2$ <b>h</b> :red[r] www.evil.example \x07#"
# Each as it would stand in Markdown source that renders it (not backslash-escaped).
MARKERS = [re.compile(p) for p in (r"(?<!\\)\]\(", r"(?<!\\)\*\*b", r"(?<!\\)\$k", r"(?<!\\)<b>",
                                   r"(?<!\\):red", r"www\.", "://", "\x07")]


def _markdown_sources(at) -> list[str]:
    """The Markdown source of everything on the page that Streamlit renders as Markdown."""
    out = []
    for kind in ("markdown", "caption", "warning", "error", "info", "success", "title", "header",
                 "subheader"):
        out += [e.value for e in getattr(at, kind)]
    return out


def _unsafe(sources: list[str]) -> list[str]:
    """Sources in which a payload marker stands outside a code span."""
    return [s for s in sources if any(m.search(_SPAN.sub("", s)) for m in MARKERS)]


def test_the_checker_sees_raw_markup():
    assert _unsafe(["Unknown setting 'www.evil.example' ignored."])
    assert not _unsafe([plain("Unknown setting 'www.evil.example' ignored.")])


def _page(params: dict):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def test_no_query_parameter_is_rendered_as_markup():
    from models.config import FIELDS
    names = ["preset", "run", "compare", "lock", PAYLOAD] + [f.name for f in FIELDS]
    shown = 0
    for name in names:
        at = _page({name: PAYLOAD} if name != PAYLOAD else {PAYLOAD: "1"})
        sources = _markdown_sources(at)
        assert not _unsafe(sources), (name, _unsafe(sources))
        shown += any("evil" in s for s in sources)
    # The payload was really shown (quoted in a message), not silently dropped, for most params.
    assert shown >= len(names) // 2, shown


def test_upload_names_and_cells_are_not_rendered_as_markup():
    name = PAYLOAD.replace(",", " ").replace("\x07", "")  # a control byte reads as binary
    good = (f"day,{name}\n" + "".join(f"{i},{i % 7}\n" for i in range(40))).encode()
    bad = (f"{name}\n" + f"{name}\n" * 40).encode()  # no column of numbers: the error quotes it
    seen = []
    for content in (good, bad):
        at = _page({"task": "user", "seq_len": "5"})
        at.sidebar.get("file_uploader")[0].upload(f"{PAYLOAD}.csv", content, "text/csv")
        at.run()
        assert not at.exception, at.exception
        sources = _markdown_sources(at) + [e.value for e in [*at.sidebar.error, *at.sidebar.caption]]
        assert not _unsafe(sources), _unsafe(sources)
        seen.append(any("evil" in s for s in sources))
    assert seen[0], "the good file's column name is shown"
