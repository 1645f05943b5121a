"""`genfast serve` for an image generator: OpenAI's images API, batching, limits and errors."""

import asyncio
import base64
import io
import time
from contextlib import contextmanager

import httpx
import pytest

from genfast.images.tiny import save_tiny_image_pipeline
from genfast.serving.scheduler import SchedulerConfig
from genfast.serving.server import ServeConfig, build_server
from tests.serving_helpers import serving

pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def tiny_image_dir(tmp_path_factory):
    return save_tiny_image_pipeline(tmp_path_factory.mktemp("serve-image") / "digits")


@contextmanager
def image_server(path, timeout_s: float = 30.0, **scheduler):
    cfg = ServeConfig(model=str(path), request_timeout_s=timeout_s, scheduler=SchedulerConfig(**scheduler))
    api = build_server(cfg, eager=False)
    with serving(api, cfg.http) as base:
        yield base, api


def _png(b64: str):
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_the_official_client_draws_digits(tiny_image_dir):
    openai = pytest.importorskip("openai")
    with image_server(tiny_image_dir) as (base, _):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
        result = client.images.generate(model="digits", prompt="7", n=3, size="8x8", response_format="b64_json")
        images = [_png(d.b64_json) for d in result.data]
        assert [(i.size, i.mode) for i in images] == [((8, 8), "L")] * 3
        assert len({i.tobytes() for i in images}) == 3  # each image its own seed
        assert client.models.list().data[0].id == "digits"


def test_a_seed_draws_the_same_images_whatever_else_is_running(tiny_image_dir):
    body = {"prompt": "3", "n": 2, "seed": 42}
    with image_server(tiny_image_dir) as (base, api):
        alone = httpx.post(f"{base}/v1/images/generations", json=body, timeout=60).json()["data"]

        async def crowd():
            async with httpx.AsyncClient(timeout=60) as c:
                others = [c.post(f"{base}/v1/images/generations", json={"prompt": str(d), "n": 3}) for d in range(5)]
                return await asyncio.gather(c.post(f"{base}/v1/images/generations", json=body), *others)

        responses = asyncio.run(crowd())
        metrics = httpx.get(f"{base}/metrics").text
    assert all(r.status_code == 200 for r in responses)
    assert [d["b64_json"] for d in responses[0].json()["data"]] == [d["b64_json"] for d in alone]
    # one UNet batch per step held several requests' images
    def value(name: str) -> float:
        return float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith(name)))

    assert value("genfast_batch_size_sum") / value("genfast_batch_size_count") > 2
    assert 'genfast_generated_images_total{model_name="digits"} 20.0' in metrics  # 2 + 15 + 2 + 1 warm-up


@pytest.mark.parametrize("body,status,param", [
    ({"prompt": "a cat"}, 400, "prompt"),
    ({"prompt": "12"}, 400, "prompt"),
    ({"prompt": "7", "size": "256x256"}, 400, "size"),
    ({"prompt": "7", "response_format": "url"}, 400, "response_format"),
    ({"prompt": "7", "n": 11}, 400, "n"),
    ({"prompt": "7", "style": "vivid"}, 400, "style"),
    ({"prompt": "7", "model": "dall-e-3"}, 404, "model"),
    ({"prompt": "²"}, 400, "prompt"),  # a "digit" to str.isdigit that int() cannot read
    ({"prompt": "7", "seed": 2**32}, 400, "seed"),  # the CPU generator keeps 32 bits
    ({"prompt": "7", "seed": "5"}, 400, "seed"),
])
def test_requests_the_model_cannot_draw_are_refused_by_field(tiny_image_dir, body, status, param):
    with image_server(tiny_image_dir) as (base, _):
        r = httpx.post(f"{base}/v1/images/generations", json=body, timeout=30)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["param"] == param and error["message"]


def test_a_word_names_a_digit_too(tiny_image_dir):
    with image_server(tiny_image_dir) as (base, _):
        r = httpx.post(f"{base}/v1/images/generations", json={"prompt": " Seven ", "seed": 1}, timeout=30)
        same = httpx.post(f"{base}/v1/images/generations", json={"prompt": "7", "seed": 1}, timeout=30)
    assert r.status_code == 200 and r.json()["data"] == same.json()["data"]


def test_a_full_queue_answers_429_and_a_slow_request_504(tiny_image_dir):
    with image_server(tiny_image_dir, max_running=10, max_queued=1) as (base, _):
        async def burst():
            async with httpx.AsyncClient(timeout=60) as c:
                return await asyncio.gather(*[c.post(f"{base}/v1/images/generations", json={"prompt": "1", "n": 10})
                                              for _ in range(6)])

        codes = sorted(r.status_code for r in asyncio.run(burst()))
    assert codes[0] == 200 and 429 in codes and set(codes) <= {200, 429}
    with image_server(tiny_image_dir, timeout_s=0.001) as (base, _):
        r = httpx.post(f"{base}/v1/images/generations", json={"prompt": "1"}, timeout=30)
    assert r.status_code == 504 and "did not finish" in r.json()["error"]["message"]


def test_a_burst_that_fits_the_next_batch_is_not_refused(tiny_image_dir):
    with image_server(tiny_image_dir, max_running=10, max_queued=2) as (base, _):
        async def burst():
            async with httpx.AsyncClient(timeout=60) as c:
                return await asyncio.gather(*[c.post(f"{base}/v1/images/generations", json={"prompt": "1"})
                                              for _ in range(10)])

        assert [r.status_code for r in asyncio.run(burst())] == [200] * 10


def test_clients_that_leave_free_their_handlers_and_are_counted(tmp_path):
    """The request is aborted, its handler returns, and the engine is idle again."""
    slow = save_tiny_image_pipeline(tmp_path / "digits", train_timesteps=1000)  # seconds per request
    with image_server(slow) as (base, api):
        async def leave():
            async with httpx.AsyncClient(timeout=0.05) as c:
                for _ in range(3):
                    with pytest.raises(httpx.TimeoutException):
                        await c.post(f"{base}/v1/images/generations", json={"prompt": "1", "n": 10})

        asyncio.run(leave())
        deadline = time.monotonic() + 10
        while (api.engine.busy or api.engine._queues) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not api.engine.busy and not api.engine._queues  # no handler left waiting on a stream
        assert 'genfast_requests_total{model_name="digits",status="abort"} 3.0' in httpx.get(f"{base}/metrics").text
