"""1,000 fuzzed query strings: each is clamped to a runnable config or refused with a message."""
from urllib.parse import parse_qsl

from hypothesis import given, settings, strategies as st

from models.config import FIELD, FIELDS, RunConfig, _parse

keys = st.sampled_from([f.name for f in FIELDS] + ["preset", "run", "lock", "x"])
values = st.one_of(st.text(max_size=30), st.integers(-10**12, 10**12).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["true", "0", "nan", "inf", "-1", "1e309", "", "chunks", "samples"]))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(keys, values), max_size=8))
def test_any_query_string_gives_a_valid_config_or_a_message(pairs):
    query = "&".join(f"{k}={v}" for k, v in pairs)
    params = dict(parse_qsl(query, keep_blank_values=True))
    cfg, problems = RunConfig.from_mapping(params)
    assert cfg.problems() == []  # whatever came in, what goes out can run
    assert all(isinstance(p, str) and 0 < len(p) < 300 for p in problems)
    given_fields = {k: v for k, v in params.items() if k in FIELD}
    if not problems:  # nothing reported: every given setting was taken as written
        for k, v in given_fields.items():
            assert getattr(cfg, k) == _parse(FIELD[k], v)
    assert RunConfig.from_mapping(cfg.to_query()) == (cfg, [])  # and the URL round-trips
