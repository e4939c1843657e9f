"""Runs the page trained, shared between test modules of one session.

PRESET_RUNS: preset -> claims.measure() of the run tests/test_every_view.py trained through the
page. tests/test_claims.py judges the claims on those runs instead of training every preset
again (conftest.py orders test_every_view.py first)."""
PRESET_RUNS: dict[str, dict] = {}
