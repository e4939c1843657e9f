"""Every claim the app makes, checked by a real run (real Keras, the presets' own settings), and
every check shown to be able to fail."""
from __future__ import annotations

import re
import time

import pytest

from models import claims, traps
from models.claims import CLAIMS, Alphabet, Contrast, Count, Range, Trap, alphabet_summary
from models.presets import PRESETS
from models.tasks import LETTERS
from tests.page_runs import PRESET_RUNS


@pytest.fixture(scope="module")
def runs():
    """One run per preset the claims need, plus both partial-batch demos (reused by every test).
    Presets trained through the page earlier in this session (tests/test_every_view.py, which
    runs first) are judged on those runs: the same settings, trained and shown by the app."""
    t = time.perf_counter()
    verdicts, info = claims.run_all(measured=PRESET_RUNS)
    print(f"\nclaims: {len(PRESET_RUNS)} page runs reused; "
          f"{len(info['seconds'])} runs in {time.perf_counter() - t:.1f} s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in info["seconds"].items()))
    return {v.claim.id: v for v in verdicts}, info["measures"]


@pytest.mark.parametrize("cid", [c.id for c in CLAIMS])
def test_claim_holds_on_its_run(runs, cid):
    v = runs[0][cid]
    assert v.holds, f"{cid}: {v.claim.statement} -- measured: {v.measured}"


def test_every_preset_has_a_claim_and_every_claim_a_preset():
    assert {c.preset for c in CLAIMS} == set(PRESETS)
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)


@pytest.mark.parametrize("c", [c for c in CLAIMS if isinstance(c, Contrast)], ids=lambda c: c.id)
def test_contrast_changes_exactly_one_setting(c):
    a, b = PRESETS[c.preset].config, PRESETS[c.control].config
    diff = [k for k, v in a.to_dict().items() if b.to_dict()[k] != v]
    assert diff == [c.setting]


def test_a_contrast_against_a_control_differing_in_two_settings_refuses_to_exist():
    # naive-chunks-mistake differs from chunks-stateful in layout, reset, batch size and epochs
    with pytest.raises(ValueError, match="exactly one setting"):
        Contrast("bad", "naive-chunks-mistake", control="chunks-stateful", direction="below")
    # the shipped shuffle preset used to differ from its control in shuffle AND reset
    old = PRESETS["shuffle-breaks-state"]
    assert claims.differences(old.config.replace(reset="epoch"), PRESETS["chunks-stateful"].config) == [
        "shuffle", "reset"]


def test_every_decimal_in_an_expected_text_is_a_bound_of_its_claims():
    for name, p in PRESETS.items():
        said = " ".join(c.statement for c in CLAIMS if c.preset == name)
        for number in re.findall(r"\d+\.\d+", p.expected):
            assert number in said, f"{name}: {number} in its expected text is checked by no claim"


def _other_runs(c, measures):
    """Every way to judge claim c on runs that are not its own (presets only)."""
    names = [n for n in PRESETS if n in measures and "error" not in measures[n]]
    for other in names:
        if other in c.runs:
            continue
        yield {**measures, c.runs[0]: measures[other]}
    if len(c.runs) == 2:  # a contrast judged with its two runs swapped
        a, b = c.runs
        yield {**measures, a: measures[b], b: measures[a]}


@pytest.mark.parametrize("c", [c for c in CLAIMS if isinstance(c, (Range, Contrast, Count))],
                         ids=lambda c: c.id)
def test_claim_can_fail_on_another_run(runs, c):
    measures = runs[1]
    outcomes = [claims.evaluate(c, m).holds for m in _other_runs(c, measures)]
    assert outcomes and not all(outcomes), f"{c.id} holds on every other run: it checks nothing"


def test_alphabet_claim_fails_for_a_model_that_reads_letters(runs):
    c = next(c for c in CLAIMS if isinstance(c, Alphabet))
    i = LETTERS.index
    reader = {s: (list(LETTERS[i(s) + 1:i(s) + 6]) + ["Z"] * 5)[:5] for s in LETTERS[:-1]}
    m = dict(runs[1])
    m[c.preset] = {**m[c.preset], "alphabet": reader}
    v = claims.evaluate(c, m)
    assert not v.holds and "it is the next letter from 25 of 25 start letters" in v.measured


def test_trap_claims_fail_on_the_other_demo(runs):
    one, two = (next(c for c in CLAIMS if isinstance(c, Trap) and c.leftover == n) for n in (1, 2))
    m = runs[1]
    assert not claims.evaluate(one, {**m, "trap1": m["trap2"]}).holds
    assert not claims.evaluate(two, {**m, "trap2": m["trap1"]}).holds


def test_trap_demo_measures_both_traps(runs):
    one, two = runs[1]["trap1"], runs[1]["trap2"]
    # 1 left over: fit trains, and every slot's state is its own state advanced with that sample
    assert one["trained"] and one["error"] is None
    assert one["slots_fed_leftover"] == one["batch_size"] == traps.B
    assert one["slots_changed"] == traps.B and one["max_broadcast_error"] <= 1e-5
    # 2 left over: fit fails, and we keep TensorFlow's message
    assert not two["trained"] and "Incompatible shapes" in two["error"]


def test_trap_demo_rejects_a_leftover_that_is_no_partial_batch():
    for bad in (0, traps.B):
        with pytest.raises(ValueError, match="leftover must be between"):
            traps.partial_batch(bad)


def test_partial_batch_preset_leaves_the_trap_its_words_describe():
    cfg = PRESETS["partial-batch-trap"].config
    assert cfg.n_train % cfg.batch_size == 1 and cfg.layout == "full" and cfg.stateful


def test_alphabet_summary_says_what_was_measured_per_start_letter():
    counted = {s: list("BCDEF") for s in LETTERS[:-1]}
    for s in "TUVWXY":
        counted[s] = list("BYZZZ")
    text = alphabet_summary(counted)
    assert "first answer is B from all 25 start letters" in text
    assert "from A-S: B C D E F; from T-Y: B Y Z Z Z" in text
    mixed = {"A": list("BC"), "B": list("CD"), "C": list("BC")}
    text = alphabet_summary(mixed)
    assert "first answer is B from 2 of 3 start letters (otherwise B->C)" in text
    # A and C give the same answers but are not neighbours: not grouped as a range
    assert "from A: B C; from B: C D; from C: B C" in text
    assert alphabet_summary({}) == "The probe has not been run."


def test_alphabet_sentence_comes_from_the_trained_model(runs):
    m = runs[1]["alphabet-batch1-positions"]
    assert sorted(m["alphabet"]) == list(LETTERS[:-1])
    assert runs[0]["alphabet-positions"].measured == alphabet_summary(m["alphabet"])
