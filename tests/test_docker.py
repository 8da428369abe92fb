"""The image's pieces that can be checked without a Docker engine: its
config loads and serves /healthz where the HEALTHCHECK asks, and the
HEALTHCHECK command itself passes on 200 and fails on 503."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.health import HealthServer
from bot.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent


def healthcheck() -> list[str]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    m = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.MULTILINE)
    assert m, "the Dockerfile has a HEALTHCHECK in exec form"
    return list(json.loads(m[1]))


def test_the_image_config_serves_metrics_where_the_healthcheck_asks() -> None:
    config = load_config(str(REPO / "docker" / "feedbot.toml"), {"FEEDBOT_TOKEN": "1:A"})
    assert config.metrics.listen == ("0.0.0.0", 9464)
    assert "http://127.0.0.1:9464/healthz" in " ".join(healthcheck())


@pytest.mark.parametrize(("verdict", "code"), [("ok", 0), ("loop poll: no heartbeat", 1)])
async def test_the_healthcheck_command(verdict: str, code: int) -> None:
    argv = healthcheck()
    assert argv[0] == "python"
    server = HealthServer(("127.0.0.1", 0), lambda: verdict, sink=Metrics())
    await server.start()
    try:
        script = argv[-1].replace("127.0.0.1:9464", f"127.0.0.1:{server.port}")
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv[1:-1], script, stderr=asyncio.subprocess.DEVNULL
        )
        assert await asyncio.wait_for(process.wait(), 30) == code
    finally:
        await server.stop()
