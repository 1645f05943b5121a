import pytest

from genfast.errors import ConfigError
from genfast.serving.scheduler import SchedulerConfig, admit_count


def test_continuous_fills_free_slots_within_the_prefill_budget():
    cfg = SchedulerConfig(max_running=4, prefill_token_budget=100)
    assert admit_count(cfg, [30, 30, 30, 30], running=0, oldest_wait_s=0) == 3  # 90 <= 100 < 120
    assert admit_count(cfg, [30, 30], running=3, oldest_wait_s=0) == 1  # one free slot
    assert admit_count(cfg, [500], running=0, oldest_wait_s=0) == 1  # a long prompt still gets in alone
    assert admit_count(cfg, [10], running=4, oldest_wait_s=0) == 0


def test_dynamic_waits_for_a_full_batch_or_the_timeout_and_never_joins_a_running_one():
    cfg = SchedulerConfig(mode="dynamic", max_running=4, batch_wait_s=0.05)
    assert admit_count(cfg, [5, 5], running=0, oldest_wait_s=0.01) == 0
    assert admit_count(cfg, [5, 5], running=0, oldest_wait_s=0.06) == 2
    assert admit_count(cfg, [5] * 6, running=0, oldest_wait_s=0.0) == 4
    assert admit_count(cfg, [5], running=1, oldest_wait_s=9) == 0


def test_sequential_runs_one_at_a_time():
    cfg = SchedulerConfig(mode="sequential")
    assert admit_count(cfg, [5, 5], running=0, oldest_wait_s=0) == 1
    assert admit_count(cfg, [5], running=1, oldest_wait_s=0) == 0


@pytest.mark.parametrize("kwargs", [dict(mode="fifo"), dict(max_running=0), dict(batch_wait_s=-1)])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        SchedulerConfig(**kwargs).validate()
