"""People who may use the console: users, roles, password hashes, the setup code, login throttling.

It owns `<state>/webui/users.json` (written atomically, mode 0600) and the
one-time setup code in `<state>/webui/setup-code`. There is no default
account: until the first admin exists, the only way in is the setup code
printed on the console and logged at first start, used once. Passwords are
hashed with scrypt (memory-hard, from the standard library; n=2**15, r=8,
p=1: 32 MiB and about 0.1 s per check on a Raspberry Pi 4 class CPU), each
with its own salt, compared in constant time. User names follow the one
name pattern of the configuration (`gateway.config.NAME_PATTERN`). The login
throttle lives in `webui.throttle`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.config import NAME_RULE, name_problem
from gateway.files import atomic_write
from webui.throttle import Throttle

__all__ = ["AccountError", "Accounts", "CAN_CHANGE", "ROLES", "Throttle", "User", "check_password",
           "hash_password", "password_problem"]

ROLES = ("admin", "technician", "viewer")
#: what each role may do; a role includes the ones after it
#: config: devices, tags, rules, machines, shifts; connections: sinks and every other section (destinations,
#: credentials, [webui], [store], [files], the whole file's admin parts); system: NTP and SSH
CAN_CHANGE = {"admin": {"config", "connections", "queue", "users", "system"}, "technician": {"config", "queue"},
              "viewer": set()}

_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
MIN_PASSWORD = 10


class AccountError(ValueError):
    """A refused account operation; the message is for the person."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 2**20, dklen=32, **_SCRYPT)
    return "scrypt$%d$%d$%d$%s$%s" % (_SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"],
                                       base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 2**20, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def password_problem(password: str, name: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"password must have at least {MIN_PASSWORD} characters"
    if password.lower() == name.lower() or password.lower() in {"password123", "admin12345", "linebridge"}:
        return "password is too easy to guess"
    return None


@dataclass
class User:
    name: str
    role: str
    password: str          # the scrypt hash, never the password
    created: float
    created_by: str

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created": self.created, "created_by": self.created_by}


class Accounts:
    """The user file and the setup code of one state directory; safe across threads."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "webui"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.dir / "users.json"
        self.code_path = self.dir / "setup-code"
        self._lock = threading.Lock()
        self._setup_lock = threading.Lock()

    # -- users -------------------------------------------------------------
    def _read(self) -> dict[str, User]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {u["name"]: User(**u) for u in raw.get("users", [])}

    def _write(self, users: dict[str, User]) -> None:
        atomic_write(self.path, json.dumps({"users": [asdict(u) for u in users.values()]}, indent=1,
                                           sort_keys=True))

    def restore(self, records: list[Any], keep: str) -> list[str]:
        """Replace every user by `records` (a backup's users.json), checked field by field; the
        account `keep` (the admin restoring) stays as it is here when the backup lacks it."""
        problems: list[str] = []
        restored: dict[str, User] = {}
        for i, r in enumerate(records):
            try:
                user = User(**r) if isinstance(r, dict) else None
            except TypeError:
                user = None
            if user is None or not isinstance(user.name, str) or not isinstance(user.password, str):
                problems.append(f"users[{i}]: not a user record")
                continue
            why = name_problem(user.name)
            if why:
                problems.append(f"users[{i}].name: {why}")
            if user.role not in ROLES:
                problems.append(f"users[{i}].role: one of {', '.join(ROLES)}")
            if not user.password.startswith("scrypt$") or user.password.count("$") != 5:
                problems.append(f"users[{i}].password: not a password hash of this console")
            restored[user.name] = user
        with self._lock:
            mine = self._read().get(keep)
            if mine is not None and keep not in restored:
                restored[keep] = mine
            if not any(u.role == "admin" for u in restored.values()):
                problems.append("users: the restore would leave no admin")
            if problems:
                raise AccountError("; ".join(problems))
            self._write(restored)
        return sorted(restored)

    def users(self) -> list[User]:
        with self._lock:
            return sorted(self._read().values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        with self._lock:
            return self._read().get(name)

    def needs_setup(self) -> bool:
        with self._lock:
            return not any(u.role == "admin" for u in self._read().values())

    def add(self, name: str, role: str, password: str, by: str) -> User:
        if name_problem(name):
            raise AccountError(f"user names are {NAME_RULE}")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        problem = password_problem(password, name)
        if problem:
            raise AccountError(problem)
        with self._lock:
            users = self._read()
            if name in users:
                raise AccountError(f"user {name!r} exists")
            users[name] = User(name, role, hash_password(password), round(time.time(), 3), by)
            self._write(users)
            return users[name]

    def update(self, name: str, by: str, role: str | None = None, password: str | None = None) -> User:
        with self._lock:
            users = self._read()
            user = users.get(name)
            if user is None:
                raise AccountError(f"no user {name!r}")
            if role is not None:
                if not isinstance(role, str) or role not in ROLES:
                    raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
                if user.role == "admin" and role != "admin" and _admins(users) == 1:
                    raise AccountError("the last admin cannot lose the admin role")
                user.role = role
            if password is not None:
                if not isinstance(password, str):
                    raise AccountError("password must be a string")
                problem = password_problem(password, name)
                if problem:
                    raise AccountError(problem)
                user.password = hash_password(password)
            self._write(users)
            return user

    def remove(self, name: str) -> None:
        with self._lock:
            users = self._read()
            if name not in users:
                raise AccountError(f"no user {name!r}")
            if users[name].role == "admin" and _admins(users) == 1:
                raise AccountError("the last admin cannot be removed")
            del users[name]
            self._write(users)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.get(name)
        if user is None:
            check_password(password, _DUMMY)  # same time whether or not the name exists
            return None
        return user if check_password(password, user.password) else None

    # -- the one-time setup code ------------------------------------------
    def setup_code(self) -> str | None:
        """The code to print at start while no admin exists (made once, kept across restarts)."""
        if not self.needs_setup():
            self.code_path.unlink(missing_ok=True)
            return None
        with self._lock:
            try:
                code = self.code_path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                code = ""
            if not code:    # none yet (an empty file is no code: a new one, never "")
                code = "-".join(secrets.token_hex(2).upper() for _ in range(3))
                atomic_write(self.code_path, code + "\n")
            return code

    def check_setup_code(self, code: str) -> bool:
        expected = self.setup_code()
        given = code.strip().upper().replace(" ", "")
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    def create_first_admin(self, code: str, name: str, password: str) -> User:
        """Consume the setup code: only while no admin exists, only with the right code.

        Check and use happen under one lock, so two requests racing with the
        right code make one admin, not two.
        """
        with self._setup_lock:
            if not self.check_setup_code(code):
                raise AccountError("the setup code is not right (see the console or the log of the first start)")
            user = self.add(name, "admin", password, by="setup")
            self.code_path.unlink(missing_ok=True)
            return user


def _admins(users: dict[str, User]) -> int:
    return sum(1 for u in users.values() if u.role == "admin")


_DUMMY = hash_password(secrets.token_hex(8))
