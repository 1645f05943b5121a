import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.serving_helpers import free_port


def _start(model_dir, port, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "genfast.cli.main", "serve", "--model", str(model_dir),
                             "--port", str(port), "--threads", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_ready(base, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server not ready")


def _stream_with_sigterm(base, proc, max_tokens, meanwhile) -> list[str]:
    """Stream a greedy completion, SIGTERM the server at its first chunk, run ``meanwhile``, and
    return the data lines that follow."""
    with httpx.stream("POST", f"{base}/v1/completions", timeout=60,
                      json={"prompt": "def", "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0,
                            "stream": True}) as r:
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data: "))
        proc.send_signal(signal.SIGTERM)
        meanwhile()
        return [line[6:] for line in lines if line.startswith("data: ")]


def _until_draining(base: str, within_s: float = 10.0) -> httpx.Response:
    """/health's first answer after the server began to drain (503), polled at once: a tiny model
    finishes a request within tens of milliseconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        health = httpx.get(f"{base}/health", timeout=5)
        if health.status_code == 503:
            return health
    raise AssertionError(f"the server did not start draining within {within_s} s")


def test_sigterm_finishes_running_requests_and_exits_0(tiny_dirs):
    port = free_port()
    proc = _start(tiny_dirs["llama"], port)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        chunks = []
        with httpx.stream("POST", f"{base}/v1/completions", timeout=60,
                          json={"prompt": "def", "max_tokens": 80, "ignore_eos": True, "temperature": 0,
                                "stream": True}) as r:
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                if not chunks:
                    proc.send_signal(signal.SIGTERM)  # shut down while this request is running
                chunks.append(line[6:])
        assert chunks[-1] == "[DONE]"
        finals = [json.loads(c) for c in chunks[:-1]]
        assert finals[-1]["choices"][0]["finish_reason"] == "length"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_port_in_use_is_a_clear_error(tiny_dirs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _start(tiny_dirs["gpt2"], port)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in err and "Traceback" not in err


def test_model_that_fails_to_load(tmp_path):
    proc = _start(tmp_path, free_port())
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 1 and err.strip().startswith("Error:") and "no config.json" in err


def test_health_is_503_while_loading_and_while_draining(tiny_dirs):
    port = free_port()
    proc = _start(tiny_dirs["llama"], port)
    base = f"http://127.0.0.1:{port}"
    seen = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and 200 not in seen:
            assert proc.poll() is None, proc.stderr.read()
            try:
                r = httpx.get(f"{base}/health", timeout=2)
                seen.append(r.status_code)
                if r.status_code == 503:
                    assert r.json() == {"status": "starting"}
                    early = httpx.post(f"{base}/v1/completions", json={"prompt": "x"}, timeout=5)
                    if early.status_code != 200:  # else the model finished loading in between
                        assert early.status_code == 503 and "loading" in early.json()["error"]["message"]
            except httpx.TransportError:
                time.sleep(0.02)
        assert seen[0] == 503 and seen[-1] == 200  # the socket answers before the model is loaded
        seen_meanwhile = {}

        def probe():
            seen_meanwhile["health"] = _until_draining(base)
            seen_meanwhile["refused"] = httpx.post(f"{base}/v1/completions", json={"prompt": "x"}, timeout=5)

        rest = _stream_with_sigterm(base, proc, 200, probe)
        health, refused = seen_meanwhile["health"], seen_meanwhile["refused"]
        assert health.status_code == 503 and health.json() == {"status": "stopping"}
        counted = [line for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines()
                   if line.startswith("genfast_http_responses_total") and 'code="503"' in line]
        assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 3  # while loading and while draining
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_error"
        assert rest[-1] == "[DONE]" and json.loads(rest[-2])["choices"][0]["finish_reason"] == "length"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigint_during_the_drain_cuts_streams_with_an_error_event(tiny_dirs):
    port = free_port()
    proc = _start(tiny_dirs["llama"], port, "--max-running", "1", "--max-model-len", "256")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        def interrupt():
            # as soon as the drain has begun: the engine steps back to back, so a tiny model's 250 tokens
            # take tens of milliseconds (signals sent together arrive lowest number first, SIGINT first)
            _until_draining(base)
            proc.send_signal(signal.SIGINT)

        rest = _stream_with_sigterm(base, proc, 250, interrupt)
        events = [json.loads(e) for e in rest if e != "[DONE]"]
        assert "error" in events[-1] and "shut down" in events[-1]["error"]["message"]
        assert proc.wait(timeout=60) == 130
        err = proc.stderr.read()
        assert "Error:" in err and "error event" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_optimized_image_pipeline_is_served_by_the_cli_and_drains_on_sigterm(tmp_path):
    """`genfast serve --model <optimize artifact>` for an image generator, as a real process."""
    from genfast.images.optimize import ImageRecipe, optimize_image
    from genfast.images.quality import ImageBudget
    from genfast.images.tiny import save_tiny_image_pipeline

    source = save_tiny_image_pipeline(tmp_path / "digits")
    optimize_image(str(source), ImageRecipe(sampler="ddim", steps=4, engine="onnxruntime"), tmp_path / "fast",
                   ImageBudget(min_class_agreement=0.0, max_fd_increase=None), quality_images=4, batch=2, rounds=1)
    port = free_port()
    proc = _start(tmp_path / "fast", port)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        r = httpx.post(f"{base}/v1/images/generations", json={"prompt": "4", "n": 3}, timeout=60)
        assert r.status_code == 200 and len(r.json()["data"]) == 3
        assert httpx.get(f"{base}/v1/models").json()["data"][0]["id"] == "fast"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
