"""Typed helpers for Portcullis authentication plugins in Python.

Decisions, grants with every WIT field defaulted, permissions,
configuration checks that name the offending key, and a constant-time
comparison, around the bindings componentize-py generates for the world
`portcullis:authenticator/authenticator@0.1.0` (the `wit_world` package).
Those bindings exist only inside a componentize-py build, so this package
is imported there: installed into the environment componentize-py runs
from, or passed with `-p`.
"""

from __future__ import annotations

import hmac
import json
import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from componentize_py_types import Err
from wit_world.imports.types import (
    Decision_Abstain,
    Decision_Allow,
    Decision_Deny,
    Grant,
    Limits,
    Permission,
    ResponsePermission,
)

__all__ = [
    "MAX_BCRYPT_COST",
    "ConfigError",
    "abstain",
    "allow",
    "bcrypt_cost",
    "configuring",
    "constant_time_eq",
    "deny",
    "grant",
    "is_bcrypt_hash",
    "limits",
    "natural",
    "only",
    "parse_config",
    "permission",
    "response_permission",
    "strings",
    "subject_permission",
]

#: Highest bcrypt cost the host's verify-password accepts.
MAX_BCRYPT_COST = 14

_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$")


def allow(grant: Grant) -> Decision_Allow:
    """Allow the login with `grant` (see `grant()`)."""
    return Decision_Allow(grant)


def deny(reason: str) -> Decision_Deny:
    """Refuse the login; `reason` is logged and sent to the server (no secrets)."""
    return Decision_Deny(reason)


def abstain() -> Decision_Abstain:
    """Not this plugin's to decide: the next plugin in the chain is asked."""
    return Decision_Abstain()


def permission(allow: Iterable[str] = (), deny: Iterable[str] = ()) -> Permission:
    """Subject allow and deny lists; empty lists restrict nothing."""
    return Permission(allow=list(allow), deny=list(deny))


def response_permission(max: int = 1, ttl_ms: int = 0) -> ResponsePermission:
    """Publish `max` responses per received request, within `ttl_ms` (0 = no limit)."""
    return ResponsePermission(max=max, ttl_ms=ttl_ms)


def limits(
    subs: Optional[int] = None, data: Optional[int] = None, payload: Optional[int] = None
) -> Limits:
    """Connection limits; `None` = unlimited."""
    return Limits(subs=subs, data=data, payload=payload)


def grant(
    account: str,
    *,
    display_name: Optional[str] = None,
    publish: Optional[Permission] = None,
    subscribe: Optional[Permission] = None,
    response: Optional[ResponsePermission] = None,
    expires_in_secs: Optional[int] = None,
    tags: Iterable[str] = (),
    source_cidrs: Iterable[str] = (),
    connection_types: Iterable[str] = (),
    limits: Optional[Limits] = None,
) -> Grant:
    """A grant for `account`, every other WIT field defaulted: no display
    name, no restrictions, the plugin's max_expiry, no tags, any network
    and connection type, no limits."""
    return Grant(
        account=account,
        display_name=display_name,
        publish=publish if publish is not None else permission(),
        subscribe=subscribe if subscribe is not None else permission(),
        response=response,
        expires_in_secs=expires_in_secs,
        tags=list(tags),
        source_cidrs=list(source_cidrs),
        connection_types=list(connection_types),
        limits=limits if limits is not None else Limits(subs=None, data=None, payload=None),
    )


class ConfigError(Exception):
    """A configuration the plugin refuses; `configuring()` reports its message."""


@contextmanager
def configuring() -> Iterator[None]:
    """Wrap `configure`'s body: a ConfigError raised inside becomes the
    `Err` componentize-py returns to the host as the configuration error."""
    try:
        yield
    except ConfigError as e:
        raise Err(str(e)) from None


def parse_config(config: str) -> Any:
    """The configuration JSON, or a ConfigError saying why it is not JSON."""
    try:
        return json.loads(config)
    except ValueError as e:
        raise ConfigError(f"invalid plugin configuration: {e}") from None


def only(where: str, value: Any, keys: Sequence[str]) -> Mapping[str, Any]:
    """`value` when it is an object whose keys are all in `keys`; a typo
    must not pass silently. `where` names the place in the configuration."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    for key in value:
        if key not in keys:
            expected = ", ".join(f"`{k}`" for k in keys)
            raise ConfigError(f"{where}: unknown field `{key}`, expected one of {expected}")
    return value


def strings(where: str, value: Any) -> list[str]:
    """A list of strings (`None` = empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"{where} must be a list of strings")
    return value


def subject_permission(where: str, value: Any) -> Permission:
    """`{"allow": [...], "deny": [...]}` as a permission (`None` = none)."""
    if value is None:
        return permission()
    only(where, value, ["allow", "deny"])
    return permission(strings(f"{where}.allow", value.get("allow")), strings(f"{where}.deny", value.get("deny")))


def natural(value: Any) -> bool:
    """True for an int >= 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_bcrypt_hash(s: str) -> bool:
    """True when `s` looks like a bcrypt hash (`$2a$`, `$2b$`, `$2y$`)."""
    return s.startswith(("$2a$", "$2b$", "$2y$"))


def bcrypt_cost(hash: str) -> Optional[int]:
    """The cost of a bcrypt hash (4..31), or None when it has none."""
    match = _BCRYPT.match(hash)
    cost = int(match.group(1)) if match else -1
    return cost if 4 <= cost <= 31 else None


def constant_time_eq(a: str, b: str) -> bool:
    """Compares two strings in time that depends only on their lengths."""
    return hmac.compare_digest(a.encode(), b.encode())
