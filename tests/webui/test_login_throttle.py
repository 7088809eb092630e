"""Login throttling against a running gateway: parallel guesses, one account from many addresses.

Before issue #16 the check and the count were two steps, so 40 parallel wrong
logins from one address had 10 checked instead of 5, and 20 addresses x 4
guesses at one account were all checked. Each attempt is now reserved before
it is checked, per address and per account; every refusal is logged, no
password ever is.
"""
from __future__ import annotations

import re
import threading
from typing import Iterator

import httpx
import pytest

from tests.webui.conftest import ADMIN_PASSWORD, Gateway, admin_console, start_gateway
from tests.webui.test_security import ConsoleFrom, console_ready

GUESS = "guessed-password-"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    for g in start_gateway(tmp_path_factory.mktemp("throttle")):
        yield console_ready(g)


def ready_client(gw: Gateway, address: str) -> tuple[httpx.Client, str]:
    c = ConsoleFrom(gw, address)
    return c.http, c.form_token("/login")


def parallel_logins(gw: Gateway, attempts: list[tuple[str, str, str]]) -> list[int]:
    """POST every (address, name, password) at the same moment; the status of each."""
    clients = [ready_client(gw, address) for address, _, _ in attempts]
    barrier = threading.Barrier(len(attempts))
    status: list[int] = [0] * len(attempts)

    def go(i: int) -> None:
        http, token = clients[i]
        _, name, password = attempts[i]
        barrier.wait()
        status[i] = http.post("/login", data={"csrf_token": token, "name": name, "password": password}).status_code
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(attempts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for http, _ in clients:
        http.close()
    return status


def test_forty_parallel_guesses_from_one_address_have_five_checked(gw: Gateway) -> None:
    admin_console(gw).close()
    status = parallel_logins(gw, [("127.0.0.1", f"user{i}", GUESS + str(i)) for i in range(40)])
    assert sorted(set(status)) == [401, 429], status
    assert status.count(401) == 5, status
    log = gw.log()
    assert len(re.findall(r"event=webui_login_throttled .*from=127\.0\.0\.1", log)) == 35
    assert GUESS not in log


def test_twenty_addresses_guessing_one_account_have_five_checked(gw: Gateway) -> None:
    attempts = [(f"127.0.2.{a}", "admin", GUESS + f"{a}-{n}") for a in range(1, 21) for n in range(4)]
    status = parallel_logins(gw, attempts)
    assert status.count(401) == 5, status
    assert status.count(429) == 75, status
    log = gw.log()
    assert len(re.findall(r"event=webui_login_throttled user=admin from=127\.0\.2\.", log)) == 75
    assert GUESS not in log
    # the account waits, the first time for the window, from any address, even with the right password
    resp = ConsoleFrom(gw, "127.0.3.1").login("admin", ADMIN_PASSWORD)
    wait = re.search(r"try again in (\d+) s", resp.text)
    assert resp.status_code == 429 and wait and 200 < int(wait.group(1)) <= 300, resp.text[-800:]
