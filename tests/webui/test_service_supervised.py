"""The console's server is a supervised task of the gateway: when it stops serving unasked, the death is
logged and counted and the server listens again on its port."""
from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.request

from gateway import config as config_mod
from gateway.demo import demo_config_text
from gateway.supervisor import Supervisor
from tests.helpers import free_port, port_open
from webui.service import TASK, WebService


def _get(port: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", context=ctx, timeout=5) as resp:
        return resp.status


def test_a_web_ui_server_that_stops_serving_is_restarted_on_its_port(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    path = tmp_path / "gateway.toml"
    path.write_text(demo_config_text(webui_port=port).replace("127.0.0.1:8069", f"127.0.0.1:{free_port()}"))
    cfg = config_mod.load(path)

    async def go() -> dict:
        sup = Supervisor(cfg, tmp_path / "state")
        sup.tasks.initial, sup.tasks.cap = 0.05, 0.1
        service = WebService(sup, path)
        await service.start()
        try:
            assert await asyncio.to_thread(_get, port) == 200
            dying = service.server
            assert dying is not None
            await asyncio.to_thread(dying.stop)  # the server ends on its own: nobody asked the task to stop
            deadline = asyncio.get_running_loop().time() + 10
            while sup.tasks.status()[TASK]["restarts"] < 1 or service.server is None \
                    or service.server is dying or not port_open(port):
                assert asyncio.get_running_loop().time() < deadline, sup.tasks.status()
                await asyncio.sleep(0.05)
            assert await asyncio.to_thread(_get, port) == 200
            return sup.tasks.status()[TASK]
        finally:
            await service.stop()
            assert not sup.tasks.running(TASK)
            sup.store.close()

    record = asyncio.run(asyncio.wait_for(go(), 60))
    assert record["restarts"] == 1 and record["state"] == "running"
    assert any(f"event=task_died task={TASK}" in r.getMessage() for r in caplog.records)
    assert not port_open(port)
