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
