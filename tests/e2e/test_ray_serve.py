import os

import httpx
import pytest

from genfast.serving.scheduler import SchedulerConfig
from genfast.serving.server import ServeConfig
from tests.serving_helpers import free_port

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")


@pytest.mark.slow
def test_ray_serve_replica_answers_openai_requests(tiny_dirs):
    from ray import serve

    from genfast.serving.ray_serve import start

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    port = free_port()
    cfg = ServeConfig(model=str(tiny_dirs["llama"]), port=port, scheduler=SchedulerConfig(max_running=2, max_queued=4))
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        start(cfg)
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/v1/completions", timeout=60,
                       json={"prompt": "def f():", "max_tokens": 6, "temperature": 0, "ignore_eos": True})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 6
        with httpx.stream("POST", f"{base}/v1/completions", timeout=60,
                          json={"prompt": "x", "max_tokens": 4, "stream": True, "ignore_eos": True}) as s:
            lines = [line for line in s.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and len(lines) >= 2
        bad = httpx.post(f"{base}/v1/completions", json={"prompt": "x", "temperature": 7}, timeout=60)
        assert bad.status_code == 400 and "error" in bad.json()
        assert httpx.get(f"{base}/health", timeout=30).json() == {"status": "ok"}
    finally:
        serve.shutdown()
        ray.shutdown()


def test_missing_ray_names_the_extra(monkeypatch):
    import importlib.util

    from genfast.errors import BackendUnavailableError
    from genfast.serving import ray_serve

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("ray") else real(name, *a))
    with pytest.raises(BackendUnavailableError, match="genfast\\[ray\\]"):
        ray_serve.require_ray()
