"""Learning-rate schedules against hand-worked values; warmup; lr_at agrees with lr_curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import ScheduleConfig
from engine.schedules import SCHEDULES, lr_at, lr_curve

ETA = 0.1


def rates(config: ScheduleConfig, steps: list[int], base_lr: float = ETA) -> list[float]:
    return [lr_at(t, base_lr, config) for t in steps]


# A configuration per schedule in which every parameter matters over a few hundred steps.
BUSY = dict(
    step_size=10,
    gamma=0.5,
    decay_rate=0.5,
    decay_steps=40,
    total_steps=100,
    min_lr=1e-3,
    cycle_steps=15,
    pct_start=0.3,
)


def test_registry_keys_in_order_and_entries_named_for_their_key() -> None:
    expected = ["constant", "step", "exponential", "cosine", "cyclic", "one_cycle"]
    assert list(SCHEDULES)[: len(expected)] == expected
    for key, schedule in SCHEDULES.items():
        assert schedule.name == key
        assert schedule.label and schedule.formula
        assert schedule.description and "\n" not in schedule.description


def test_constant() -> None:
    assert rates(ScheduleConfig(name="constant"), [0, 1, 10_000]) == [ETA] * 3


def test_step_drops_by_gamma_on_the_step_size_boundary() -> None:
    config = ScheduleConfig(name="step", step_size=10, gamma=0.5)
    assert rates(config, [0, 9, 10, 19, 20, 25]) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-12
    )


def test_exponential_multiplies_by_decay_rate_every_decay_steps() -> None:
    config = ScheduleConfig(name="exponential", decay_rate=0.5, decay_steps=100)
    assert rates(config, [0, 50, 100, 200]) == pytest.approx(
        [0.1, 0.1 / math.sqrt(2), 0.05, 0.025], rel=1e-12
    )


def test_cosine_from_eta_to_min_lr_then_flat() -> None:
    config = ScheduleConfig(name="cosine", total_steps=100, min_lr=0.001)
    quarter = 0.001 + 0.5 * 0.099 * (1 + math.sqrt(0.5))
    assert rates(config, [0, 25, 50, 100, 200]) == pytest.approx(
        [0.1, quarter, 0.0505, 0.001, 0.001], rel=1e-12
    )


def test_cyclic_triangle_with_default_peak_ten_times_eta() -> None:
    config = ScheduleConfig(name="cyclic", cycle_steps=10, max_lr=0.0)
    assert rates(config, [0, 5, 10, 15, 20, 30, 40], base_lr=0.01) == pytest.approx(
        [0.01, 0.055, 0.1, 0.055, 0.01, 0.1, 0.01], rel=1e-12
    )


def test_cyclic_explicit_max_lr_and_ignores_min_lr() -> None:
    config = ScheduleConfig(name="cyclic", cycle_steps=10, max_lr=0.05, min_lr=0.5)
    assert rates(config, [0, 5, 10, 20], base_lr=0.01) == pytest.approx(
        [0.01, 0.03, 0.05, 0.01], rel=1e-12
    )


def test_one_cycle_start_peak_end() -> None:
    config = ScheduleConfig(
        name="one_cycle",
        total_steps=100,
        pct_start=0.3,
        max_lr=1.0,
        div_factor=25.0,
        final_div_factor=1e4,
    )
    start, end = 1.0 / 25, 1.0 / 25 / 1e4
    got = rates(config, [0, 15, 30, 65, 100, 300])
    want = [start, start + 0.5 * (1.0 - start), 1.0, end + 0.5 * (1.0 - end), end, end]
    assert got == pytest.approx(want, rel=1e-12)
    curve = lr_curve(np.arange(101), 0.1, config)
    assert int(np.argmax(curve)) == 30
    assert np.all(np.diff(curve[:31]) > 0) and np.all(np.diff(curve[30:]) < 0)


def test_one_cycle_peak_defaults_to_eta() -> None:
    config = ScheduleConfig(name="one_cycle", total_steps=100, pct_start=0.5, max_lr=0.0)
    assert rates(config, [0, 50]) == pytest.approx([ETA / 25, ETA], rel=1e-12)


def test_warmup_rises_linearly_to_the_schedule_start_then_runs_the_schedule() -> None:
    config = ScheduleConfig(name="step", step_size=5, gamma=0.5, warmup_steps=10)
    got = rates(config, [0, 1, 4, 9, 10, 14, 15, 20])
    assert got == pytest.approx([0.01, 0.02, 0.05, 0.1, 0.1, 0.1, 0.05, 0.025], rel=1e-12)
    assert got[3] == ETA  # the last warmup step is exactly schedule(0)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_warmup_shifts_every_schedule(name: str) -> None:
    w = 7
    plain = ScheduleConfig(name=name, **BUSY)
    warm = ScheduleConfig(name=name, warmup_steps=w, **BUSY)
    steps = np.arange(300)
    s = lr_curve(steps, ETA, plain)
    got = lr_curve(steps, ETA, warm)
    np.testing.assert_allclose(got[:w], s[0] * (steps[:w] + 1) / w, rtol=1e-14)
    assert got[0] == pytest.approx(s[0] / w, rel=1e-14)
    assert got[w - 1] == s[0]
    np.testing.assert_array_equal(got[w:], s[:-w])


@pytest.mark.parametrize("warmup", [0, 7])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_lr_at_equals_lr_curve_exactly(name: str, warmup: int) -> None:
    config = ScheduleConfig(name=name, warmup_steps=warmup, **BUSY)
    steps = np.arange(3 * config.total_steps + 1)
    curve = lr_curve(steps, ETA, config)
    assert curve.dtype == np.float64 and curve.shape == steps.shape
    assert [lr_at(int(t), ETA, config) for t in steps] == curve.tolist()


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("config_kw", [{}, BUSY], ids=["defaults", "busy"])
def test_rates_positive_and_finite_over_three_lengths(name: str, config_kw: dict) -> None:
    config = ScheduleConfig(name=name, warmup_steps=20, **config_kw)
    curve = lr_curve(np.arange(3 * config.total_steps + 1), ETA, config)
    assert np.all(np.isfinite(curve)) and np.all(curve > 0)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_deterministic_and_independent_of_which_steps_are_asked(name: str) -> None:
    config = ScheduleConfig(name=name, warmup_steps=5, **BUSY)
    steps = np.arange(400)
    first = lr_curve(steps, ETA, config)
    np.testing.assert_array_equal(first, lr_curve(steps, ETA, config))
    order = np.random.default_rng(0).permutation(400)
    np.testing.assert_array_equal(lr_curve(steps[order], ETA, config), first[order])


def test_bad_name_and_negative_step_name_the_problem() -> None:
    with pytest.raises(ValueError, match="'cosin'"):
        lr_at(0, ETA, ScheduleConfig(name="cosin"))
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        lr_at(-1, ETA, ScheduleConfig())


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(list(SCHEDULES)),
    base_lr=st.floats(1e-5, 10.0),
    warmup=st.integers(0, 50),
    step_size=st.integers(1, 200),
    gamma=st.floats(0.1, 1.0),
    decay_rate=st.floats(0.1, 1.0),
    decay_steps=st.integers(1, 500),
    total_steps=st.integers(1, 500),
    min_lr=st.floats(0.0, 1.0),
    cycle_steps=st.integers(1, 200),
    max_lr=st.floats(0.0, 10.0),
    pct_start=st.floats(0.01, 0.99),
)
def test_any_decaying_config_gives_finite_rates_and_lr_at_agrees(
    name: str, base_lr: float, warmup: int, **kw: float
) -> None:
    config = ScheduleConfig(name=name, warmup_steps=warmup, **kw)
    config.validate()
    steps = np.arange(0, 3 * config.total_steps + warmup + 1, 7)
    curve = lr_curve(steps, base_lr, config)
    # >= 0, not > 0: min_lr = 0 ends cosine at 0, and gamma**k underflows on long runs.
    assert np.all(np.isfinite(curve)) and np.all(curve >= 0)
    assert [lr_at(int(t), base_lr, config) for t in steps] == curve.tolist()
