"""Accounts of the console: scrypt hashes, roles, password rules, the one-time setup code, the login throttle."""
from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from webui.accounts import (MIN_PASSWORD, AccountError, Accounts, Throttle, check_password, hash_password,
                            password_problem)
from webui.throttle import MAX_LOCK_FACTOR

GOOD = "correct horse battery"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _admin(tmp_path: Path) -> Accounts:
    acc = Accounts(tmp_path)
    acc.create_first_admin(acc.setup_code() or "", "admin", GOOD)
    return acc


# -- hashing -----------------------------------------------------------------------------------

def test_scrypt_hash_round_trips_and_refuses_a_wrong_password() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("scrypt$32768$8$1$")
    assert GOOD not in stored
    assert check_password(GOOD, stored)
    assert not check_password(GOOD + "!", stored)
    assert not check_password("", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    a, b = hash_password(GOOD), hash_password(GOOD)
    assert a != b, "each hash has its own salt"
    assert check_password(GOOD, a) and check_password(GOOD, b)


@pytest.mark.parametrize("stored", ["", "plain", "md5$x$y", "scrypt$1$8$1$AAAA", "scrypt$x$8$1$AAAA$AAAA"])
def test_a_malformed_stored_hash_never_authenticates(stored: str) -> None:
    assert check_password(GOOD, stored) is False


def test_the_user_file_holds_hashes_only_and_is_private(tmp_path: Path) -> None:
    acc = _admin(tmp_path)
    acc.add("tech", "technician", "another long secret", by="admin")
    text = acc.path.read_text()
    assert GOOD not in text and "another long secret" not in text
    assert stat.S_IMODE(acc.path.stat().st_mode) == 0o600
    users = {u["name"]: u for u in json.loads(text)["users"]}
    assert users["tech"]["created_by"] == "admin" and users["tech"]["password"].startswith("scrypt$")
    assert not list(acc.dir.glob("*.tmp")), "the atomic write leaves no temporary file"


def test_authenticate_knows_the_right_password_only(tmp_path: Path) -> None:
    acc = _admin(tmp_path)
    user = acc.authenticate("admin", GOOD)
    assert user is not None and user.role == "admin"
    assert acc.authenticate("admin", "correct horse batterY") is None
    assert acc.authenticate("nobody", GOOD) is None
    # a new Accounts over the same state (a restart) knows the same users
    assert Accounts(tmp_path).authenticate("admin", GOOD) is not None


# -- roles and rules ---------------------------------------------------------------------------

def test_the_last_admin_can_be_neither_removed_nor_demoted(tmp_path: Path) -> None:
    acc = _admin(tmp_path)
    with pytest.raises(AccountError, match="last admin"):
        acc.remove("admin")
    with pytest.raises(AccountError, match="last admin"):
        acc.update("admin", by="admin", role="viewer")
    assert acc.get("admin").role == "admin"
    # with a second admin, either may go
    acc.add("boss", "admin", "a different long one", by="admin")
    acc.update("admin", by="boss", role="technician")
    assert acc.get("admin").role == "technician"
    with pytest.raises(AccountError, match="last admin"):
        acc.remove("boss")
    acc.update("admin", by="boss", role="admin")
    acc.remove("boss")
    assert [u.name for u in acc.users()] == ["admin"]


@pytest.mark.parametrize("name, password, problem", [
    ("alice", "short", f"at least {MIN_PASSWORD}"),
    ("alice", "x" * (MIN_PASSWORD - 1), f"at least {MIN_PASSWORD}"),
    ("administrator", "Administrator", "too easy"),
    ("alice", "password123", "too easy"),
    ("alice", "LineBridge", "too easy"),
])
def test_weak_passwords_are_refused(tmp_path: Path, name: str, password: str, problem: str) -> None:
    assert problem in (password_problem(password, name) or "")
    acc = _admin(tmp_path)
    with pytest.raises(AccountError, match=problem):
        acc.add(name, "viewer", password, by="admin")
    assert acc.get(name) is None
    acc.add(name, "viewer", GOOD + "!", by="admin")
    with pytest.raises(AccountError, match=problem):
        acc.update(name, by="admin", password=password)
    assert acc.authenticate(name, GOOD + "!") is not None, "a refused change keeps the old password"


def test_a_password_of_exactly_the_minimum_length_is_accepted() -> None:
    assert password_problem("x" * MIN_PASSWORD, "alice") is None


@pytest.mark.parametrize("name", ["", "a b", "a/b", "<script>", "x" * 65, "ü"])
def test_user_names_are_restricted(tmp_path: Path, name: str) -> None:
    acc = _admin(tmp_path)
    with pytest.raises(AccountError, match="user name"):
        acc.add(name, "viewer", GOOD, by="admin")


def test_roles_and_duplicates_are_checked(tmp_path: Path) -> None:
    acc = _admin(tmp_path)
    with pytest.raises(AccountError, match="role must be one of"):
        acc.add("bob", "root", GOOD, by="admin")
    with pytest.raises(AccountError, match="exists"):
        acc.add("admin", "viewer", "yet another password", by="admin")
    acc.add("bob", "viewer", GOOD, by="admin")
    with pytest.raises(AccountError, match="role must be one of"):
        acc.update("bob", by="admin", role="superuser")
    with pytest.raises(AccountError, match="role must be one of"):
        acc.update("bob", by="admin", role=["admin"])  # type: ignore[arg-type]
    with pytest.raises(AccountError, match="password must be a string"):
        acc.update("bob", by="admin", password=12345678901)  # type: ignore[arg-type]
    with pytest.raises(AccountError, match="no user"):
        acc.update("carol", by="admin", role="viewer")
    with pytest.raises(AccountError, match="no user"):
        acc.remove("carol")
    assert acc.get("bob").role == "viewer"


# -- the one-time setup code -------------------------------------------------------------------

def test_the_setup_code_survives_a_restart_and_is_private(tmp_path: Path) -> None:
    acc = Accounts(tmp_path)
    assert acc.needs_setup()
    code = acc.setup_code()
    assert code and len(code) == 14 and code.count("-") == 2
    assert stat.S_IMODE(acc.code_path.stat().st_mode) == 0o600
    assert acc.setup_code() == code
    assert Accounts(tmp_path).setup_code() == code, "a restart prints the same code"
    other = Accounts(tmp_path / "other")
    assert other.setup_code() != code, "every gateway has its own code"


def test_an_empty_setup_code_file_is_no_code_and_an_empty_code_never_opens_setup(tmp_path: Path) -> None:
    acc = Accounts(tmp_path)
    acc.code_path.parent.mkdir(parents=True, exist_ok=True)
    acc.code_path.write_text("\n")                   # what a power cut mid-write could have left
    with pytest.raises(AccountError, match="setup code"):
        acc.create_first_admin("", "intruder", GOOD)
    code = acc.setup_code()
    assert code and len(code) == 14 and acc.code_path.read_text() == code + "\n"
    assert acc.needs_setup()


def test_the_setup_code_works_once(tmp_path: Path) -> None:
    acc = Accounts(tmp_path)
    code = acc.setup_code() or ""
    with pytest.raises(AccountError, match="setup code"):
        acc.create_first_admin("0000-0000-0000", "admin", GOOD)
    assert acc.needs_setup() and acc.code_path.exists(), "a wrong code uses nothing up"
    # typed in lower case with spaces around, it still counts
    acc.create_first_admin(f"  {code.lower()} ", "admin", GOOD)
    assert not acc.needs_setup()
    assert not acc.code_path.exists()
    assert acc.setup_code() is None
    with pytest.raises(AccountError, match="setup code"):
        acc.create_first_admin(code, "intruder", GOOD)
    restarted = Accounts(tmp_path)
    assert restarted.setup_code() is None and not restarted.code_path.exists()
    assert [u.name for u in restarted.users()] == ["admin"]


def test_a_setup_refused_for_its_password_keeps_the_code(tmp_path: Path) -> None:
    acc = Accounts(tmp_path)
    code = acc.setup_code() or ""
    with pytest.raises(AccountError, match="at least"):
        acc.create_first_admin(code, "admin", "short")
    assert acc.setup_code() == code
    acc.create_first_admin(code, "admin", GOOD)
    assert acc.get("admin").created_by == "setup"


def test_two_setups_racing_with_the_right_code_make_one_admin(tmp_path: Path) -> None:
    acc = Accounts(tmp_path)
    code = acc.setup_code() or ""
    start = threading.Barrier(2)
    made: list[str] = []
    refused: list[str] = []

    def attempt(name: str) -> None:
        start.wait()
        try:
            made.append(acc.create_first_admin(code, name, GOOD).name)
        except AccountError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(made) == 1 and len(refused) == 1, (made, refused)
    assert [u.name for u in acc.users()] == made


# -- the login throttle ------------------------------------------------------------------------

def test_the_throttle_locks_a_key_at_its_limit_for_a_window() -> None:
    clock = FakeClock()
    t = Throttle(attempts=5, window=300, clock=clock)
    for i in range(4):
        t.failed("address:10.0.0.1")
        clock.now += 10
    assert t.wait_s("address:10.0.0.1") == 0.0, "four failures are not five"
    t.failed("address:10.0.0.1")           # the fifth locks the key for a window
    assert t.wait_s("address:10.0.0.1") == pytest.approx(300.0)
    assert t.wait_s("address:10.0.0.2") == 0.0, "another key is not throttled"
    clock.now += 299
    assert t.wait_s("address:10.0.0.1") == pytest.approx(1.0)
    clock.now += 2
    assert t.wait_s("address:10.0.0.1") == 0.0


def test_each_lock_of_the_same_key_is_twice_as_long_up_to_a_cap() -> None:
    clock = FakeClock()
    t = Throttle(attempts=2, window=60, clock=clock)
    locks = []
    for _ in range(8):
        t.failed("account:admin")
        t.failed("account:admin")
        locks.append(t.wait_s("account:admin"))
        clock.now += locks[-1] + 1
    assert locks == pytest.approx([60, 120, 240, 480, 960, 960, 960, 960])
    clock.now += 60 * MAX_LOCK_FACTOR + 1        # quiet for longer than the longest lock: forgiven
    t.failed("account:admin")
    t.failed("account:admin")
    assert t.wait_s("account:admin") == pytest.approx(60)


def test_begin_reserves_an_attempt_so_parallel_tries_cannot_outrun_the_limit() -> None:
    clock = FakeClock()
    t = Throttle(attempts=5, window=300, clock=clock)
    keys = ["address:10.0.0.1", "account:admin"]
    admitted = [t.begin(keys) == 0.0 for _ in range(40)]   # forty requests before any is checked
    assert admitted.count(True) == 5
    for _ in range(5):
        t.end(keys, ok=False)
    assert t.wait_s("address:10.0.0.1") == pytest.approx(300) and t.wait_s("account:admin") == pytest.approx(300)


def test_an_account_is_throttled_whatever_the_address() -> None:
    t = Throttle(attempts=5, window=300, clock=FakeClock())
    admitted = 0
    for a in range(20):
        for _ in range(4):
            keys = [f"address:10.0.1.{a}", "account:admin"]
            if t.begin(keys) == 0.0:
                admitted += 1
                t.end(keys, ok=False)
    assert admitted == 5


def test_threads_racing_on_one_throttle_are_admitted_at_most_the_limit() -> None:
    t = Throttle(attempts=5, window=300)
    admitted = []
    barrier = threading.Barrier(40)

    def attempt() -> None:
        barrier.wait()
        if t.begin(["address:x", "account:y"]) == 0.0:
            admitted.append(1)
            t.end(["address:x", "account:y"], ok=False)
    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(admitted) == 5


def test_a_success_clears_the_key_and_a_non_guess_only_gives_its_place_back() -> None:
    clock = FakeClock()
    t = Throttle(attempts=2, window=60, clock=clock)
    t.failed("a")
    t.succeeded("a")
    t.failed("a")
    assert t.wait_s("a") == 0.0
    assert t.begin(["a"]) == 0.0
    t.end(["a"], ok=None)
    assert t.wait_s("a") == 0.0, "a form error is not a guess"
    t.failed("a")
    assert t.wait_s("a") == pytest.approx(60.0)


def test_the_throttle_table_is_bounded() -> None:
    clock = FakeClock()
    t = Throttle(attempts=5, window=300, clock=clock, max_keys=1000)
    for i in range(100_000):
        t.failed(f"account:guess{i}")
    assert len(t) <= 1000
