import time

import pytest
import torch

from genfast.errors import ConfigError
from genfast.runtime.sampling import SamplingParams
from genfast.serving.engine_core import EngineCore, QueueFullError
from genfast.serving.scheduler import SchedulerConfig
from tests.fakes import POISON, FakeRuntime, FakeTokenizer


def make(mode="continuous", **cfg):
    rt = FakeRuntime()
    return EngineCore(rt, FakeTokenizer(), SchedulerConfig(mode=mode, **cfg)), rt


def run_all(core, limit=1000):
    events = []
    for _ in range(limit):
        if not core.has_work:
            return events
        events += core.step()
    raise AssertionError("engine did not finish")


def greedy(n, **kw):
    return SamplingParams(max_tokens=n, temperature=0, **kw)


def test_generates_exactly_max_tokens():
    core, _ = make()
    req = core.add([3, 4], greedy(5, ignore_eos=True))
    run_all(core)
    assert req.output_ids == [5, 6, 7, 8, 9]
    assert req.finish_reason == "length" and req.text == "fghij"


def test_new_requests_join_between_decode_steps():
    core, rt = make(max_running=4)
    a = core.add([1], greedy(6))
    core.step()  # a prefilled + one decode step
    b = core.add([20], greedy(3))
    core.step()  # b joins the running batch at once
    assert rt.decode_batches[-1] == 2
    run_all(core)
    assert a.output_ids == [2, 3, 4, 5, 6, 7] and b.output_ids == [21, 22, 23]


def test_finished_rows_are_refilled_and_outputs_stay_separate():
    core, _ = make(max_running=2)
    reqs = [core.add([10 * i + 1], greedy(2 + i)) for i in range(4)]
    run_all(core)
    for i, r in enumerate(reqs):
        assert r.output_ids == [10 * i + 2 + k for k in range(2 + i)]


def test_eos_and_stop_strings():
    core, _ = make()
    eos = core.add([48], greedy(10))  # 49, then 0 = EOS
    stop = core.add([1], greedy(10, stop=["de"]))  # tokens 2,3,4 -> "cde"
    run_all(core)
    assert eos.output_ids == [49, 0] and eos.finish_reason == "stop"
    assert stop.text == "c" and stop.finish_reason == "stop"


def test_dynamic_mode_admits_no_one_into_a_running_batch():
    core, rt = make(mode="dynamic", max_running=4, batch_wait_s=0)
    core.add([1], greedy(5))
    core.step()
    core.add([1], greedy(2))
    core.step()
    assert rt.decode_batches[-1] == 1
    run_all(core)
    assert max(rt.decode_batches) == 1


def test_sequential_mode_decodes_one_at_a_time():
    core, rt = make(mode="sequential")
    for _ in range(3):
        core.add([1], greedy(3))
    run_all(core)
    assert set(rt.decode_batches) == {1}


def test_limits_are_clear_errors():
    core, _ = make(max_queued=2)
    with pytest.raises(ConfigError, match="exceeds the context of 128"):
        core.add([1] * 100, greedy(50))
    with pytest.raises(ConfigError, match="prompt is empty"):
        core.add([], greedy(5))
    with pytest.raises(ConfigError, match="max_tokens must be at least 1"):
        core.add([1], greedy(0))
    with pytest.raises(ConfigError, match="64-bit"):
        core.add([1], greedy(2, seed=2**70))
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        core.add([1], greedy(2, logit_bias={10**6: 1.0}))
    with pytest.raises(ConfigError, match="presence_penalty"):
        core.add([1], greedy(2, presence_penalty=3.0))


def test_queue_limit_counts_only_requests_beyond_the_free_rows():
    core, _ = make(max_running=4, max_queued=2)
    for _ in range(4 + 2):  # four rows free on an idle engine, then two may wait
        core.add([1], greedy(5))
    with pytest.raises(QueueFullError, match="Every row is busy"):
        core.add([1], greedy(5))
    core.step()  # four admitted: running rows full, two waiting
    with pytest.raises(QueueFullError):
        core.add([1], greedy(5))


def test_prompt_and_output_caps():
    core, _ = make(max_prompt_tokens=4, max_output_tokens=8)
    with pytest.raises(ConfigError, match="at most 4"):
        core.add([1] * 5, greedy(2))
    with pytest.raises(ConfigError, match="limit of 8"):
        core.add([1], greedy(9))
    assert core.add([1] * 4, greedy(8)).prompt_ids == [1] * 4


def test_abort_frees_the_slot_for_the_next_request():
    core, _ = make(max_running=1)
    a = core.add([1], greedy(50))
    b = core.add([2], greedy(2))
    core.step()
    core.abort(a.id)
    run_all(core)
    assert a.finish_reason == "abort" and len(a.output_ids) < 50
    assert b.output_ids == [3, 4]


def test_timeout():
    core, _ = make()
    req = core.add([1], greedy(100), timeout_s=0.01)
    core.step()
    time.sleep(0.02)
    run_all(core)
    assert req.finish_reason == "timeout"


def test_one_failing_request_does_not_stop_the_others():
    core, _ = make()
    bad = core.add([POISON], greedy(3))
    good = core.add([1], greedy(3))
    run_all(core)
    assert bad.finish_reason == "error" and "poisoned prompt" in bad.error
    assert good.output_ids == [2, 3, 4]


def test_seeded_sampling_is_reproducible():
    core, _ = make()
    params = dict(max_tokens=8, temperature=5.0, seed=7, ignore_eos=True)
    a = core.add([1], SamplingParams(**params))
    b = core.add([1], SamplingParams(**params))
    run_all(core)
    assert a.output_ids == b.output_ids


def test_logit_bias_forces_and_bans_tokens():
    core, _ = make()
    forced = core.add([1], greedy(3, logit_bias={7: 100.0}, ignore_eos=True))
    banned = core.add([1], greedy(3, logit_bias={2: -100.0}, ignore_eos=True))
    run_all(core)
    assert forced.output_ids == [7, 7, 7]
    assert banned.output_ids[0] != 2


def test_frequency_penalty_discourages_repeats():
    core, _ = make()
    # the fake model always prefers previous + 1; a bias makes token 7 win everywhere, the penalty
    # (subtracted per earlier occurrence) takes it back once it has been generated often enough
    req = core.add([1], greedy(4, logit_bias={7: 2.5}, frequency_penalty=2.0, ignore_eos=True))
    run_all(core)
    assert req.output_ids[0] == 7 and req.output_ids[1] != 7


def test_logprobs_of_generated_tokens_and_their_alternatives():
    core, _ = make()
    req = core.add([1], greedy(3, logprobs=2, ignore_eos=True))
    run_all(core)
    assert [lp.token_id for lp in req.logprobs] == req.output_ids == [2, 3, 4]
    for lp in req.logprobs:
        assert lp.top[0][0] == lp.token_id and lp.logprob == pytest.approx(lp.top[0][1])
        assert len(lp.top) == 2 and lp.top[1][1] < lp.top[0][1] <= 0


def test_max_tokens_zero_scores_the_prompt_only():
    core, rt = make()
    req = core.add([1, 2, 9], SamplingParams(max_tokens=0, prompt_logprobs=1))
    run_all(core)
    assert req.output_ids == [] and req.finish_reason == "length" and not rt.decode_batches
    first, second, third = req.prompt_logprobs
    assert first.token_id == 1 and first.logprob is None
    assert second.token_id == 2 and second.top[0][0] == 2  # the fake model predicts 1 -> 2
    assert third.token_id == 9 and third.logprob < second.logprob


def test_first_token_mask_restricts_only_the_first_token():
    core, _ = make()
    allowed = torch.zeros(50, dtype=torch.bool)
    allowed[30] = True
    req = core.add([1], greedy(3, ignore_eos=True), first_token_mask=allowed)
    run_all(core)
    assert req.output_ids == [30, 31, 32]
