"""The typed configuration of one OPC-UA server connection and its tags.

This module owns parsing and validating a `[devices.<name>]` section whose
`type` is `opcua` into frozen dataclasses, reporting every problem with its full
key path through `ConfigCollector` (node ids are checked with asyncua's own
parser). It does not open connections, read certificates or resolve namespaces.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from asyncua import ua

from drivers.base import ConfigCollector

MODES: tuple[str, ...] = ("subscribe", "poll")
SECURITY_POLICIES: tuple[str, ...] = ("None", "Basic256Sha256", "Aes128Sha256RsaOaep",
                                      "Aes256Sha256RsaPss")
SECURITY_MODES: tuple[str, ...] = ("None", "Sign", "SignAndEncrypt")
TYPE_HINTS: tuple[str, ...] = ("int", "float", "bool", "string")
TIMESTAMPS: tuple[str, ...] = ("gateway", "source")
#: OPC-UA intervals are given in seconds here, like every other interval of the gateway
MAX_INTERVAL = 60.0

_DEVICE_KEYS = {"type", "endpoint", "timeout", "mode", "publishing_interval", "poll_interval",
                "keepalive_interval", "machine", "timestamps", "security_policy",
                "security_mode", "certificate", "private_key", "server_certificate", "pki_dir",
                "application_uri", "username", "password", "password_env", "tags"}
_TAG_KEYS = {"node", "sampling_interval", "deadband", "deadband_percent", "queue_size", "type"}
_TAG_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TagNode:
    """Where a tag lives: a node id, or an identifier in a namespace known by URI (`nsu=`)."""

    text: str                       # as configured, for log lines
    node_id: ua.NodeId | None       # set when the namespace is given by index (`ns=`)
    namespace_uri: str | None = None  # set for `nsu=...`; resolved on every connect
    identifier: Any = None
    identifier_type: ua.NodeIdType | None = None

    def resolve(self, namespaces: list[str]) -> ua.NodeId | None:
        """The node id on this server, or None when its namespace URI is unknown there."""
        if self.node_id is not None:
            return self.node_id
        if self.namespace_uri not in namespaces:
            return None
        return ua.NodeId(self.identifier, namespaces.index(self.namespace_uri),
                         self.identifier_type)


@dataclass(frozen=True)
class OpcUaTagConfig:
    """One tag: a variable node and how its changes are reported."""

    name: str
    node: TagNode
    sampling_interval: float | None = None  # seconds; None = the publishing interval
    deadband: float | None = None           # absolute
    deadband_percent: float | None = None   # of the node's EURange
    queue_size: int = 10
    type: str | None = None                 # "int" | "float" | "bool" | "string"


@dataclass(frozen=True)
class OpcUaDeviceConfig:
    """One OPC-UA server endpoint, its security and login, and the tags read from it."""

    endpoint: str
    timeout: float = 5.0
    mode: str = "subscribe"
    publishing_interval: float = 0.5
    poll_interval: float = 1.0
    keepalive_interval: float = 5.0
    machine: str | None = None
    timestamps: str = "gateway"
    security_policy: str = "None"
    security_mode: str = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    pki_dir: str | None = None       # None: ./pki/<device>
    application_uri: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None
    tags: dict[str, OpcUaTagConfig] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        return self.security_policy != "None"

    def resolve_password(self) -> str | None:
        """The password, read from `password_env` when configured that way."""
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return self.password


def parse_node(text: str) -> TagNode:
    """Parse `ns=2;s=Machine1.Counter` (or `nsu=urn:...;s=...`); raises ValueError."""
    if not text.strip():
        raise ValueError("must not be empty")
    try:
        parsed = ua.NodeId.from_string(text)
    except (ua.UaStringParsingError, ValueError) as exc:
        raise ValueError(f"is not a valid OPC-UA node id ({_first_arg(exc)}); "
                         f"expected e.g. \"ns=2;s=Machine1.Counter\" or \"ns=3;i=1001\"") from None
    identifier = parsed.Identifier
    if isinstance(identifier, str) and not identifier:
        raise ValueError("has an empty identifier")
    if parsed.NodeIdType in (ua.NodeIdType.Numeric, ua.NodeIdType.TwoByte,
                             ua.NodeIdType.FourByte) and not 0 <= identifier <= 0xFFFFFFFF:
        raise ValueError(f"numeric identifier {identifier} is outside 0..4294967295")
    if isinstance(parsed, ua.ExpandedNodeId):
        if parsed.ServerIndex:
            raise ValueError("node ids on other servers (svr=) are not supported")
        if parsed.NamespaceUri:
            return TagNode(text, None, parsed.NamespaceUri, identifier, parsed.NodeIdType)
    if not 0 <= parsed.NamespaceIndex <= 65535:
        raise ValueError(f"namespace index {parsed.NamespaceIndex} is outside 0..65535")
    return TagNode(text, ua.NodeId(identifier, parsed.NamespaceIndex, parsed.NodeIdType))


def _first_arg(exc: Exception) -> str:
    inner = exc.args[-1] if exc.args else exc
    return str(inner)


def parse_device(section: dict[str, Any], path: str, issues: ConfigCollector,
                 require_tags: bool = True) -> OpcUaDeviceConfig | None:
    """Validate a device section; returns None when any problem was reported."""
    before = len(issues.issues)
    if not isinstance(section, dict):
        issues.add(path, f"must be a table, got {section!r}")
        return None
    issues.unknown_keys(section, path, _DEVICE_KEYS)
    issues.get(section, path, "type", str, choices=("opcua",))
    endpoint = issues.get(section, path, "endpoint", str, required=True)
    if isinstance(endpoint, str):
        _check_endpoint(endpoint, f"{path}.endpoint", issues)
    timeout = _interval(issues, section, path, "timeout", 5.0, maximum=300.0)
    mode = issues.get(section, path, "mode", str, default="subscribe", choices=MODES)
    publishing = _interval(issues, section, path, "publishing_interval", 0.5)
    poll = _interval(issues, section, path, "poll_interval", 1.0, maximum=3600.0)
    keepalive = _interval(issues, section, path, "keepalive_interval", 5.0, maximum=300.0)
    machine = issues.get(section, path, "machine", str)
    timestamps = issues.get(section, path, "timestamps", str, default="gateway",
                            choices=TIMESTAMPS)
    policy, sec_mode = _parse_security(section, path, issues)
    certificate = _file(issues, section, path, "certificate")
    private_key = _file(issues, section, path, "private_key")
    if (certificate is None) != (private_key is None) and not _has_issue(issues, before, path,
                                                                          ("certificate",
                                                                           "private_key")):
        missing = "private_key" if private_key is None else "certificate"
        issues.add(f"{path}.{missing}", "certificate and private_key must be given together")
    server_certificate = _file(issues, section, path, "server_certificate")
    if policy == "None":
        for key in ("certificate", "private_key", "server_certificate"):
            if key in section:
                issues.add(f"{path}.{key}", 'has no effect with security_policy = "None"')
    pki_dir = issues.get(section, path, "pki_dir", str)
    application_uri = issues.get(section, path, "application_uri", str)
    if isinstance(application_uri, str) and ":" not in application_uri:
        issues.add(f"{path}.application_uri",
                   f"must be a URI such as \"urn:linebridge:gw1\", got {application_uri!r}")
    username, password, password_env = _parse_login(section, path, issues)
    tags = _parse_tags(section, path, issues, require_tags)
    if len(issues.issues) > before:
        return None
    return OpcUaDeviceConfig(
        endpoint=endpoint, timeout=timeout, mode=mode, publishing_interval=publishing,
        poll_interval=poll, keepalive_interval=keepalive, machine=machine,
        timestamps=timestamps, security_policy=policy, security_mode=sec_mode,
        certificate=certificate, private_key=private_key,
        server_certificate=server_certificate, pki_dir=pki_dir,
        application_uri=application_uri, username=username, password=password,
        password_env=password_env, tags=tags)


def _has_issue(issues: ConfigCollector, before: int, path: str, keys: tuple[str, ...]) -> bool:
    wanted = {f"{path}.{k}" for k in keys}
    return any(i.path in wanted for i in issues.issues[before:])


def _check_endpoint(endpoint: str, path: str, issues: ConfigCollector) -> None:
    url = urlparse(endpoint)
    if url.scheme != "opc.tcp":
        issues.add(path, f"must start with opc.tcp://, got {endpoint!r}")
        return
    try:
        port = url.port
    except ValueError:
        issues.add(path, f"has an invalid port: {endpoint!r}")
        return
    if not url.hostname:
        issues.add(path, f"has no host name: {endpoint!r}")
    if port is None:
        issues.add(path, f"must name the port, e.g. opc.tcp://{url.hostname or 'host'}:4840, "
                         f"got {endpoint!r}")
    if "@" in url.netloc:
        issues.add(path, "must not carry a user or password; use username and password keys")


def _interval(issues: ConfigCollector, section: dict[str, Any], path: str, key: str,
              default: float, maximum: float = MAX_INTERVAL) -> float:
    value = issues.get(section, path, key, float, default=default)
    if not math.isfinite(value) or value <= 0:
        issues.add(f"{path}.{key}", f"must be a number of seconds > 0, got {value!r}")
        return default
    if value > maximum:
        hint = (f" (intervals are in seconds: did you mean {value / 1000:g} for {value:g} ms?)"
                if value >= 100 else "")
        issues.add(f"{path}.{key}", f"must be at most {maximum:g} seconds, got {value:g}{hint}")
        return default
    return value


def _parse_security(section: dict[str, Any], path: str,
                    issues: ConfigCollector) -> tuple[str, str]:
    policy = issues.get(section, path, "security_policy", str, default="None",
                        choices=SECURITY_POLICIES)
    default_mode = "None" if policy == "None" else "SignAndEncrypt"
    mode = issues.get(section, path, "security_mode", str, default=default_mode,
                      choices=SECURITY_MODES)
    if policy == "None" and mode != "None":
        issues.add(f"{path}.security_mode",
                   f'{mode!r} needs a security_policy other than "None"')
    elif policy != "None" and mode == "None":
        issues.add(f"{path}.security_mode",
                   f'must be "Sign" or "SignAndEncrypt" with security_policy = {policy!r}')
    return policy, mode


def _file(issues: ConfigCollector, section: dict[str, Any], path: str, key: str) -> str | None:
    value = issues.get(section, path, key, str)
    if value is None:
        return None
    if not value.strip():
        issues.add(f"{path}.{key}", "must not be empty")
        return None
    if not os.path.isfile(value):
        issues.add(f"{path}.{key}", f"file not found: {value}")
        return None
    return value


def _parse_login(section: dict[str, Any], path: str,
                 issues: ConfigCollector) -> tuple[str | None, str | None, str | None]:
    username = issues.get(section, path, "username", str)
    password = issues.get(section, path, "password", str)
    password_env = issues.get(section, path, "password_env", str)
    if isinstance(username, str) and not username:
        issues.add(f"{path}.username", "must not be empty")
    if password is not None and password_env is not None:
        issues.add(f"{path}.password_env", "give either password or password_env, not both")
    if isinstance(password_env, str) and not _ENV_NAME.fullmatch(password_env):
        issues.add(f"{path}.password_env",
                   f"must be an environment variable name, got {password_env!r}")
    if username is None and (password is not None or password_env is not None):
        key = "password" if password is not None else "password_env"
        issues.add(f"{path}.{key}", "needs a username")
    if username is not None and password is None and password_env is None:
        issues.add(f"{path}.username", "needs a password or password_env")
    return username, password, password_env


def _parse_tags(section: dict[str, Any], path: str, issues: ConfigCollector,
                require_tags: bool) -> dict[str, OpcUaTagConfig]:
    tags_path = f"{path}.tags"
    raw_tags = issues.get(section, path, "tags", dict, required=require_tags)
    if raw_tags is None:
        return {}
    if not raw_tags and require_tags:
        issues.add(tags_path, "must define at least one tag")
    tags: dict[str, OpcUaTagConfig] = {}
    for name, raw in raw_tags.items():
        tag_path = f"{tags_path}.{name}"
        if not _TAG_NAME.fullmatch(name):
            issues.add(tag_path, "tag names may use only letters, digits, '_' and '-'")
            continue
        if not isinstance(raw, dict):
            issues.add(tag_path, f"must be a table, got {raw!r}")
            continue
        tag = _parse_tag(name, raw, tag_path, issues)
        if tag is not None:
            tags[name] = tag
    return tags


def _parse_tag(name: str, raw: dict[str, Any], path: str,
               issues: ConfigCollector) -> OpcUaTagConfig | None:
    before = len(issues.issues)
    issues.unknown_keys(raw, path, _TAG_KEYS)
    text = issues.get(raw, path, "node", str, required=True)
    node: TagNode | None = None
    if isinstance(text, str):
        try:
            node = parse_node(text)
        except ValueError as exc:
            issues.add(f"{path}.node", f"{text!r} {exc}")
    sampling = None
    if "sampling_interval" in raw:
        sampling = _interval(issues, raw, path, "sampling_interval", 0.5)
    deadband = issues.get(raw, path, "deadband", float)
    percent = issues.get(raw, path, "deadband_percent", float)
    if deadband is not None and (not math.isfinite(deadband) or deadband < 0):
        issues.add(f"{path}.deadband", f"must be a number >= 0, got {deadband!r}")
    if percent is not None and (not math.isfinite(percent) or not 0 <= percent <= 100):
        issues.add(f"{path}.deadband_percent", f"must be 0..100, got {percent!r}")
    if deadband is not None and percent is not None:
        issues.add(f"{path}.deadband_percent", "give either deadband or deadband_percent, not both")
    queue_size = issues.get(raw, path, "queue_size", int, default=10, minimum=1, maximum=1000)
    hint = issues.get(raw, path, "type", str, choices=TYPE_HINTS)
    if hint in ("bool", "string"):
        for key in ("deadband", "deadband_percent"):
            if key in raw:
                issues.add(f"{path}.{key}", f"applies to numbers only, not to type {hint!r}")
    if len(issues.issues) > before or node is None:
        return None
    return OpcUaTagConfig(name=name, node=node, sampling_interval=sampling, deadband=deadband,
                          deadband_percent=percent, queue_size=queue_size, type=hint)
