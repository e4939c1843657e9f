import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from models import limits
from models.upload import UploadError, check_length, parse_series


def values(data: bytes, **kw) -> list[float]:
    return parse_series(data, **kw).values.tolist()


def test_single_column_without_header():
    r = parse_series(b"1\n2.5\n-3e-1\n")
    assert r.values.dtype == np.float32 and r.values.ndim == 1
    assert r.values.tolist() == pytest.approx([1, 2.5, -0.3])
    assert r.columns == ["column 1"] and r.column == "column 1"
    assert "No header row." in r.notes


def test_header_is_detected_and_named():
    r = parse_series(b"temperature\n20\n21\n")
    assert r.values.tolist() == [20, 21]
    assert r.column == "temperature"
    assert "First row read as a header." in r.notes


def test_bom_crlf_and_blank_lines_are_fine():
    assert values(b"\xef\xbb\xbfvalue\r\n1\r\n\r\n2\r\n") == [1, 2]


@pytest.mark.parametrize("data, name", [
    (b"a;b\n1;2\n3;4\n", "semicolon"),
    (b"a\tb\n1\t2\n3\t4\n", "tab"),
    (b"a|b\n1|2\n3|4\n", "pipe"),
    (b"a b\n1  2\n3 4\n", "spaces"),
    (b"a, b\n1, 2\n3, 4\n", "comma"),
])
def test_delimiters_are_sniffed(data, name):
    r = parse_series(data)
    assert r.columns == ["a", "b"] and r.values.tolist() == [1, 3]
    assert f"Columns separated by {name}." in r.notes


def test_decimal_commas_with_semicolons():
    r = parse_series(b"x;y\n1,5;2,5\n3,5;4,5\n")
    assert r.values.tolist() == [1.5, 3.5]
    assert parse_series(b"x;y\n1,5;2,5\n3,5;4,5\n", column="y").values.tolist() == [2.5, 4.5]
    assert any("decimal commas" in n for n in r.notes)


def test_lone_comma_numbers_are_two_columns_with_an_explanation():
    r = parse_series(b"1,5\n2,5\n3,5\n")
    assert r.values.tolist() == [1, 2, 3]
    assert r.columns == ["column 1", "column 2"]
    assert any("1,5 is two columns" in n and "';'" in n for n in r.notes)


def test_several_numeric_columns_default_to_first_and_list_options():
    data = b"date,open,close\n2024-01-01,1,10\n2024-01-02,2,20\n"
    r = parse_series(data)
    assert r.columns == ["open", "close"] and r.column == "open"
    assert r.values.tolist() == [1, 2]
    assert any("'close'" in n for n in r.notes)
    assert values(data, column="close") == [10, 20]
    assert values(data, column="CLOSE") == [10, 20]
    assert values(data, column=2) == [10, 20]  # 0-based position in the file


@pytest.mark.parametrize("column, needle", [("volume", "no column 'volume'"),
                                            (7, "no column 7"),
                                            ("date", "'date' is not numeric"),
                                            (0, "'date' is not numeric")])
def test_unknown_or_text_column_lists_the_choices(column, needle):
    with pytest.raises(UploadError, match="choose one of 'open', 'close'") as e:
        parse_series(b"date,open,close\nmon,1,10\ntue,2,20\n", column=column)
    assert needle in str(e.value)


@pytest.mark.parametrize("data", [b"", b"   \n\r\n  "])
def test_empty_file(data):
    with pytest.raises(UploadError, match="empty"):
        parse_series(data)


@pytest.mark.parametrize("data", [b"PK\x03\x04\x14\x00\x06\x00binary\x00\x00",
                                  b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
                                  b"1\n2\n\x01\x02\x03\n"])
def test_binary_file(data):
    with pytest.raises(UploadError, match="binary.*CSV"):
        parse_series(data)


def test_utf16_export_is_read():
    assert values("v\n1\n2\n".encode("utf-16")) == [1, 2]


def test_latin1_header_is_read_with_a_note():
    r = parse_series("Température\n1\n2\n".encode("cp1252"))
    assert r.column == "Température" and r.values.tolist() == [1, 2]
    assert any("not UTF-8" in n for n in r.notes)


def test_no_numeric_column():
    with pytest.raises(UploadError, match="No column of numbers"):
        parse_series(b"name,city\nann,paris\nbob,rome\n")


def test_nan_and_inf_name_the_rows():
    data = b"v\n1\nnan\n3\ninf\n\n5\n-inf\n\"\"\n1e999\n9\nNaN\n"
    with pytest.raises(UploadError) as e:
        parse_series(data)
    msg = str(e.value)
    assert "6 cells" in msg
    assert "lines 3 ('nan'), 5 ('inf'), 8 ('-inf'), 9 ('empty'), 10 ('1e999')" in msg
    assert "and 1 more" in msg and "delete those rows" in msg


def test_a_few_text_cells_in_a_number_column_are_reported_not_skipped():
    with pytest.raises(UploadError, match=r"line.* 3 \('n/a'\)"):
        parse_series(b"v\n1\nn/a\n3\n4\n")


@pytest.mark.parametrize("data", [b"5\n", b"value\n5\n", b"1;2;3\n"])
def test_one_row(data):
    with pytest.raises(UploadError, match="one row.*column"):
        parse_series(data)


def test_check_length():
    check_length(40, 20)
    check_length(30, 10, min_sequences=3)
    with pytest.raises(UploadError, match="need at least 40 values for 2 sequences of length 20"):
        check_length(39, 20)


def test_too_many_bytes(monkeypatch):
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 100)
    assert len(values(b"1\n" * 50)) == 50
    with pytest.raises(UploadError, match="limit is"):
        parse_series(b"1\n" * 51)


def test_too_many_rows(monkeypatch):
    monkeypatch.setattr(limits, "MAX_UPLOAD_ROWS", 10)
    assert len(values(b"v\n" + b"1\n" * 10)) == 10  # a header does not count
    with pytest.raises(UploadError, match="11 rows; the limit is 10"):
        parse_series(b"1\n" * 11)


def test_too_many_columns():
    with pytest.raises(UploadError, match="columns"):
        parse_series(b"1\n2\n" + b",".join([b"1"] * 2000) + b"\n")


def test_ragged_rows_report_missing_cells():
    with pytest.raises(UploadError, match="line.* 3 \\('empty'\\)"):
        parse_series(b"a,b\n1,2\n3\n5,6\n", column="b")


def test_quoted_cells_are_read():
    assert values(b'"a","b"\n"1","2"\n"3","4"\n', column="b") == [2, 4]


def test_not_bytes_is_refused():
    with pytest.raises(UploadError):
        parse_series("1\n2\n")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_upload_error(data):
    try:
        r = parse_series(data)
    except UploadError as e:
        assert str(e)
    else:
        assert r.values.ndim == 1 and len(r.values) >= 2
        assert np.isfinite(r.values).all() and r.column in r.columns


CELLS = st.one_of(st.sampled_from(["1", "-2.5", "1,5", "nan", "inf", "", "x", "1e999", '"3"']),
                  st.text(max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(CELLS, min_size=1, max_size=4), min_size=1, max_size=8),
       st.sampled_from([",", ";", "\t", "|", " "]),
       st.one_of(st.none(), st.integers(-2, 5), st.text(max_size=4)))
def test_random_tables_only_raise_upload_error(rows, delim, column):
    data = "\n".join(delim.join(r) for r in rows).encode("utf-8")
    try:
        r = parse_series(data, column=column)
    except UploadError:
        return
    assert np.isfinite(r.values).all() and r.values.dtype == np.float32


def test_a_huge_cell_is_refused_not_crashing():
    with pytest.raises(UploadError, match="Could not read the line"):
        parse_series(b'"' + b"a" * 200_000 + b'"\n1\n2\n')


# ---- issue 13: an index column is not the series; quoted decimal commas ------------------------
def test_an_index_column_is_skipped_by_default():
    data = b"day,temperature\n1,20.5\n2,21\n3,19.5\n4,18\n"
    r = parse_series(data)
    assert r.column == "temperature" and r.values.tolist() == [20.5, 21, 19.5, 18]
    assert r.columns == ["day", "temperature"]  # still offered
    assert any("Skipped 'day'" in n and "index" in n for n in r.notes)
    assert values(data, column="day") == [1, 2, 3, 4]  # picked on purpose: used


@pytest.mark.parametrize("data, column", [
    (b"day,temperature\n1,20\n2,21\n4,19\n", "day"),        # not a fixed step: a series
    (b"t,x\n0.5,1\n1.0,2\n1.5,4\n", "t"),                   # not whole numbers
    (b"day,temperature\n1,20\n2,21\n", "day"),              # too short to tell
    (b"a,b\n1,10\n2,20\n3,30\n", "a"),                      # both count: the first
])
def test_what_is_not_an_index_keeps_the_first_column(data, column):
    assert parse_series(data).column == column


@pytest.mark.parametrize("data", [b'value\n"0,5"\n"1,5"\n"-2,25"\n',
                                  b'day,value\n1,"0,5"\n2,"1,5"\n3,"-2,25"\n'])
def test_quoted_decimal_commas_are_read(data):
    r = parse_series(data)
    assert r.column == "value" and r.values.tolist() == [0.5, 1.5, -2.25]
    assert any('"0,5" means 0.5' in n for n in r.notes)


def test_quoted_numbers_that_may_be_thousands_say_how_to_fix():
    with pytest.raises(UploadError, match=r"'1,500': is that a decimal comma \(1\.500\) or a "
                                          r"thousands separator \(1500\)\?"):
        parse_series(b'value\n"1,500"\n"2,250"\n"3,125"\n')
    # One cell that cannot be thousands ("0,5") decides it: decimal commas.
    assert values(b'value\n"1,500"\n"0,5"\n"2,250"\n') == [1.5, 0.5, 2.25]
