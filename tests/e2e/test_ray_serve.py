import ipaddress
import os

import httpx
import pytest

from genfast.serving.scheduler import SchedulerConfig
from genfast.serving.server import ServeConfig
from tests.serving_helpers import free_port

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
psutil = pytest.importorskip("psutil")  # ray vendors one (ray/thirdparty_files)


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback  # gRPC binds 127.0.0.1 as ::ffff:127.0.0.1


def _ray_processes() -> dict:
    """This process (Ray's driver), its descendants, and processes that run from this Ray session
    or Ray's package, or are named like Ray's, whose parent is one of those (fixpoint)."""
    me = psutil.Process()
    procs = {me.pid: me} | {p.pid: p for p in me.children(recursive=True)}
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    ray_dir = os.path.dirname(ray.__file__)
    others = []
    for p in psutil.process_iter():
        try:
            cmd, name, ppid = " ".join(p.cmdline()), p.name(), p.ppid()
        except psutil.Error:
            continue
        if session_dir in cmd:
            procs.setdefault(p.pid, p)
        elif ray_dir in cmd or name.startswith("ray::") or name in ("gcs_server", "raylet"):
            others.append((p, ppid))
    grew = True
    while grew:
        grew = False
        for p, ppid in others:
            if ppid in procs and p.pid not in procs:
                procs[p.pid], grew = p, True
    return procs


def _listening(p) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def _listening_sockets(ignore_here: set) -> list[tuple[str, int, int, str]]:
    """(ip, port, pid, name) of every listening socket of Ray's processes; in this process, the
    driver, those in ``ignore_here`` (open before Ray started) are not Ray's."""
    found = []
    for pid, p in _ray_processes().items():
        try:
            name = p.name()
            found += [(ip, port, pid, name) for ip, port in _listening(p)
                      if pid != os.getpid() or (ip, port) not in ignore_here]
        except psutil.Error:  # exited meanwhile
            continue
    return found


@pytest.mark.slow
def test_ray_serve_on_its_own_local_ray_answers_and_listens_on_loopback_only(tiny_dirs, monkeypatch):
    """start() starts Ray itself (no RAY_ADDRESS, not initialised); every socket that Ray's
    processes listen on (GCS, raylet, agents, metrics, core workers, Serve) is loopback."""
    from ray import serve

    from genfast.serving.ray_serve import start

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    assert not ray.is_initialized()
    port = free_port()
    cfg = ServeConfig(model=str(tiny_dirs["llama"]), port=port, scheduler=SchedulerConfig(max_running=2, max_queued=4))
    before = _listening(psutil.Process())
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

        sockets = _listening_sockets(ignore_here=before)
        names = {name for *_, name in sockets}
        # The scan must reach Ray's core and Serve's actors, or an all-clear would mean nothing.
        assert {"gcs_server", "raylet", "ray::ProxyActor"} <= names, sorted(names)
        assert any(n.startswith("ray::ServeReplica") for n in names), sorted(names)
        assert port in {p for _, p, *_ in sockets}
        exposed = sorted(f"{name} (pid {pid}) listens on {ip}:{p}" for ip, p, pid, name in sockets
                         if not _is_loopback(ip))
        assert not exposed, "Ray listens beyond loopback:\n" + "\n".join(exposed)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.mark.parametrize("case", ["RAY_ADDRESS", "initialised", "ray start", "local"])
def test_start_only_makes_a_new_local_ray_loopback(case, monkeypatch):
    """Which ray.init() start() makes; a cluster it joins is left as it was (no Ray started)."""
    from ray import serve
    from ray._private import ray_constants, services

    from genfast.serving import ray_serve

    calls = []
    cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if case == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", "ray://10.0.0.1:10001")
    monkeypatch.setattr(ray, "is_initialized", lambda: case == "initialised")
    monkeypatch.setattr(services, "find_bootstrap_address", lambda _: "10.0.0.2:6379" if case == "ray start" else None)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((kw, ray_constants.ENABLE_RAY_CLUSTER)))
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.1")
    monkeypatch.setattr(serve, "start", lambda **kw: None)
    monkeypatch.setattr(serve, "run", lambda *a, **kw: None)
    monkeypatch.setattr(ray_serve, "build_deployment", lambda *a: None)

    ray_serve.start(ServeConfig(model="m"))

    assert ray_constants.ENABLE_RAY_CLUSTER == cluster_flag
    if case == "RAY_ADDRESS":
        assert calls == [({"address": "ray://10.0.0.1:10001"}, cluster_flag)]
    elif case == "initialised":
        assert calls == []
    elif case == "ray start":
        assert calls == [({"include_dashboard": False, "_node_ip_address": "127.0.0.1"}, cluster_flag)]
    else:
        [(kw, flag_during_init)] = calls
        assert flag_during_init is False  # so that ray.init keeps the loopback node IP
        assert kw["address"] == "local" and kw["include_dashboard"] is False
        assert kw["_node_ip_address"] in ("127.0.0.1", "::1")
        assert callable(kw["runtime_env"]["worker_process_setup_hook"])


def test_missing_ray_names_the_extra(monkeypatch):
    import importlib.util

    from genfast.errors import BackendUnavailableError
    from genfast.serving import ray_serve

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    with pytest.raises(BackendUnavailableError, match="genfast\\[ray\\]"):
        ray_serve.require_ray()
