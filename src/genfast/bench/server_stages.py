"""A genfast server's own per-stage times, read from its /metrics before and after a run."""

from __future__ import annotations

import httpx

STAGE_METRIC = "genfast_stage_seconds"


def _parse(text: str) -> dict[str, tuple[float, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != STAGE_METRIC:
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage")
            if sample.name.endswith("_sum"):
                sums[stage] = sample.value
            elif sample.name.endswith("_count"):
                counts[stage] = sample.value
    return {s: (sums.get(s, 0.0), counts.get(s, 0.0)) for s in sums}


async def scrape(client: httpx.AsyncClient, url: str) -> dict[str, tuple[float, float]] | None:
    """Stage (sum, count) pairs, or None when the endpoint is not a genfast server."""
    try:
        r = await client.get(f"{url}/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if r.status_code != 200 or STAGE_METRIC not in r.text:
        return None
    return _parse(r.text)


def stage_means(before: dict | None, after: dict | None) -> dict[str, float] | None:
    """Mean seconds per request and stage between two scrapes."""
    if before is None or after is None:
        return None
    means = {}
    for stage, (total, count) in after.items():
        prev_total, prev_count = before.get(stage, (0.0, 0.0))
        if count > prev_count:
            means[stage] = (total - prev_total) / (count - prev_count)
    return means
