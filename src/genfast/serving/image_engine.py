"""Step-level batching of image requests: one UNet forward per step over every running image.

Each request keeps its own noise, scheduler (some keep state between steps) and step count; the
UNet takes a timestep per row, so requests that arrived at different times share each forward.
A request joins at the next step when its images fit under ``max_batch_images``, and leaves when
its last step is done. The same interface as ``EngineCore`` (``make_request``, ``waiting``,
``running``, ``step``, ``abort``), so ``AsyncEngine`` drives it unchanged.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from genfast.errors import ConfigError
from genfast.images.model import ImageModelHandle
from genfast.images.sampling import Denoiser, scheduler_with_steps
from genfast.serving.engine_core import EngineStoppedError, QueueFullError


@dataclass
class ImageRequest:
    """One images request and its progress."""

    id: str
    labels: list[int]
    seeds: list[int]
    deadline: float | None = None
    arrival: float = field(default_factory=time.monotonic)
    scheduler: Any = None
    x: torch.Tensor | None = None
    """The images being denoised: (n, channels, h, w)."""
    generators: list[torch.Generator] = field(default_factory=list)
    step_index: int = 0
    images: torch.Tensor | None = None
    """The finished uint8 images (n, channels, h, w)."""
    finish_reason: str | None = None
    error: str | None = None
    admitted: float | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)


@dataclass
class ImageEvent:
    request: ImageRequest
    finished: bool


@dataclass
class ImageEngineConfig:
    max_batch_images: int = 64
    """Images denoised together in one UNet forward."""
    max_queued: int = 64
    """Requests waiting beyond this get QueueFullError (HTTP 429)."""
    max_images_per_request: int = 10
    """OpenAI's own limit for ``n``."""

    def validate(self) -> None:
        if self.max_batch_images < self.max_images_per_request:
            raise ConfigError(f"--max-batch-images ({self.max_batch_images}) must hold one request's "
                              f"{self.max_images_per_request} images.")
        if self.max_queued < 0:
            raise ConfigError(f"--max-queued must be >= 0, got {self.max_queued}.")


class ImageEngineCore:
    """Continuous batching of denoising steps for one image model."""

    def __init__(self, handle: ImageModelHandle, denoise: Denoiser, config: ImageEngineConfig | None = None) -> None:
        self.handle, self.denoise = handle, denoise
        self.config = config or ImageEngineConfig()
        self.config.validate()
        self.steps, self.sampler = handle.steps, handle.recipe.get("sampler")
        self.shape = (handle.channels, handle.image_size, handle.image_size)
        self.waiting: deque[ImageRequest] = deque()
        self.running: list[ImageRequest] = []
        self.accepting = True
        self.last_batch_size = 0
        self._ids = itertools.count()

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def make_request(self, labels: list[int], seeds: list[int], timeout_s: float | None = None,
                     waiting: int = 0, arrival: float | None = None) -> ImageRequest:
        """Validate a request without queueing it (``waiting``: requests already queued)."""
        if not self.accepting:
            raise EngineStoppedError("The server is shutting down.", "Send the request to another replica.")
        if not 1 <= len(seeds) <= self.config.max_images_per_request:
            raise ConfigError(f"n must be between 1 and {self.config.max_images_per_request}, got {len(seeds)}.",
                              param="n")
        # requests that will join the next step are not queued: only those beyond the free images count
        free = self.config.max_batch_images - sum(r.n for r in self.running)
        beyond = waiting - max(0, free) // len(seeds)
        if beyond >= self.config.max_queued:
            raise QueueFullError(f"{waiting} requests are already waiting.")
        now = time.monotonic()
        return ImageRequest(id=f"img-{next(self._ids)}", labels=labels, seeds=seeds,
                            deadline=now + timeout_s if timeout_s else None, arrival=arrival or now)

    def add(self, labels: list[int], seeds: list[int], timeout_s: float | None = None) -> ImageRequest:
        req = self.make_request(labels, seeds, timeout_s, waiting=len(self.waiting))
        self.waiting.append(req)
        return req

    def abort(self, request_id: str, reason: str = "abort") -> None:
        """Mark a request finished; the next step takes it out and reports it."""
        for req in (*self.waiting, *self.running):
            if req.id == request_id and req.finish_reason is None:
                req.finish_reason = reason

    def _admit(self) -> None:
        images = sum(r.n for r in self.running)
        while self.waiting and images + self.waiting[0].n <= self.config.max_batch_images:
            req = self.waiting.popleft()
            req.scheduler = scheduler_with_steps(self.handle.scheduler, self.sampler, self.steps)
            req.generators = [torch.Generator().manual_seed(int(s)) for s in req.seeds]
            req.x = torch.stack([torch.randn(self.shape, generator=g) for g in req.generators])
            req.x = req.x * req.scheduler.init_noise_sigma
            req.admitted = time.monotonic()
            self.running.append(req)
            images += req.n

    def _ended_early(self, now: float) -> list[ImageEvent]:
        """Take out the aborted requests and those past their deadline; their finished events."""
        events = []
        for queue in (self.waiting, self.running):
            for req in list(queue):
                if req.finish_reason is None and req.deadline is not None and now > req.deadline:
                    req.finish_reason = "timeout"
                if req.finish_reason is not None:
                    queue.remove(req)
                    events.append(ImageEvent(req, True))
        return events

    @torch.inference_mode()
    def step(self) -> list[ImageEvent]:
        """Admit what fits, run one denoising step of every running image; the finished requests' events."""
        events = self._ended_early(time.monotonic())
        self._admit()
        if not self.running:
            return events
        running = list(self.running)
        timesteps = [r.scheduler.timesteps[r.step_index] for r in running]
        x = torch.cat([r.scheduler.scale_model_input(r.x, t) for r, t in zip(running, timesteps, strict=True)])
        t = torch.cat([ts.expand(r.n) for r, ts in zip(running, timesteps, strict=True)])
        labels = torch.tensor([label for r in running for label in r.labels]) if running[0].labels else None
        self.last_batch_size = len(x)
        try:
            eps = self.denoise(x, t, labels).split([r.n for r in running])
        except Exception as exc:  # noqa: BLE001 - one failed forward ends its batch, not the server
            for req in running:
                self.running.remove(req)
                req.finish_reason, req.error = "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                events.append(ImageEvent(req, True))
            return events
        for req, e, ts in zip(running, eps, timesteps, strict=True):
            req.x = req.scheduler.step(e, ts, req.x, generator=req.generators).prev_sample
            req.step_index += 1
            if req.step_index == len(req.scheduler.timesteps):
                req.images = ((req.x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                req.finish_reason = "stop"
                self.running.remove(req)
                events.append(ImageEvent(req, True))
        return events
