"""The static-users plugin in Python: the nats-by-example user directory
(users.json), with the same answers as plugins/static-users.

Configuration: {"alice": {"pass": "alice", "account": "APP1"}, "bob":
{"pass": "$2b$...", "account": "APP2", "permissions": {"pub": {"allow":
["bob.>"]}, "sub": {"allow": ["bob.>"]}, "resp": {"max": 1}}}}. `pass` is
plaintext or a bcrypt hash (checked by the host's verify-password). A login
without a user name is not this plugin's to decide (abstain); an unknown user
or a wrong password is denied.

Built with componentize-py --stub-wasi: the component imports only the host
interface, so the clock and randomness come from the host (`now_unix_ms`),
and printing traps; log through `host.log`.
"""

import hmac
import json
import re

from wit_world.exports import Plugin as PluginInterface
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    AuthRequest,
    Decision,
    Decision_Abstain,
    Decision_Allow,
    Decision_Deny,
    Grant,
    Limits,
    Permission,
    ResponsePermission,
)

# Highest bcrypt cost the host verifies.
MAX_BCRYPT_COST = 14
BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$")


class ConfigError(Exception):
    pass


def only(where, value, keys):
    """Refuse keys the format does not have: a typo must not pass silently."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    for key in value:
        if key not in keys:
            expected = ", ".join(f"`{k}`" for k in keys)
            raise ConfigError(f"{where}: unknown field `{key}`, expected one of {expected}")
    return value


def strings(where, value):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"{where} must be a list of strings")
    return value


def subject_list(where, value):
    if value is None:
        return Permission(allow=[], deny=[])
    only(where, value, ["allow", "deny"])
    return Permission(
        allow=strings(f"{where}.allow", value.get("allow")),
        deny=strings(f"{where}.deny", value.get("deny")),
    )


def natural(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class User:
    def __init__(self, name, entry):
        where = f"user {json.dumps(name, ensure_ascii=False)}"
        only(where, entry, ["pass", "account", "permissions"])
        if not isinstance(entry.get("pass"), str):
            raise ConfigError(f"{where}: missing field `pass`")
        if not isinstance(entry.get("account"), str):
            raise ConfigError(f"{where}: missing field `account`")
        if entry["account"] == "":
            raise ConfigError(f"{where} has an empty account")
        self.password = entry["pass"]
        self.account = entry["account"]
        self.bcrypt = self.password.startswith(("$2a$", "$2b$", "$2y$"))
        if self.bcrypt:
            match = BCRYPT.match(self.password)
            cost = int(match.group(1)) if match else -1
            if not 4 <= cost <= 31:
                raise ConfigError(f"{where} has a malformed bcrypt hash")
            if cost > MAX_BCRYPT_COST:
                raise ConfigError(
                    f"{where} has a bcrypt cost of {cost}, above the host's maximum of {MAX_BCRYPT_COST}"
                )
        self.publish = Permission(allow=[], deny=[])
        self.subscribe = Permission(allow=[], deny=[])
        self.response = None
        permissions = entry.get("permissions")
        if permissions is not None:
            p = only(f"{where}.permissions", permissions, ["pub", "sub", "resp"])
            self.publish = subject_list(f"{where}.permissions.pub", p.get("pub"))
            self.subscribe = subject_list(f"{where}.permissions.sub", p.get("sub"))
            if p.get("resp") is not None:
                r = only(f"{where}.permissions.resp", p["resp"], ["max", "ttl"])
                max_, ttl = r.get("max", 0), r.get("ttl", 0)
                if not natural(max_) or not natural(ttl):
                    raise ConfigError(
                        f"{where}.permissions.resp: max and ttl must be non-negative integers"
                    )
                # ttl is nanoseconds, as Go's time.Duration serialises.
                self.response = ResponsePermission(max=max_, ttl_ms=ttl // 1_000_000)

    def password_matches(self, given):
        if self.bcrypt:
            return host.verify_password(given, self.password)
        # Time depends only on the lengths.
        return hmac.compare_digest(self.password.encode(), given.encode())

    def grant(self, name):
        return Grant(
            account=self.account,
            display_name=name,
            publish=self.publish,
            subscribe=self.subscribe,
            response=self.response,
            expires_in_secs=None,
            tags=[],
            source_cidrs=[],
            connection_types=[],
            limits=Limits(subs=None, data=None, payload=None),
        )


USERS = {}


class Plugin(PluginInterface):
    def configure(self, config: str) -> None:
        global USERS
        try:
            parsed = json.loads(config)
        except ValueError as e:
            raise Err(f"invalid plugin configuration: {e}")
        if not isinstance(parsed, dict):
            raise Err("invalid plugin configuration: expected an object of users")
        try:
            USERS = {name: User(name, entry) for name, entry in parsed.items()}
        except ConfigError as e:
            raise Err(str(e))
        host.log(host.Level.DEBUG, f"static-users-py: {len(USERS)} users")

    def authenticate(self, request: AuthRequest) -> Decision:
        name = request.connect.user
        if not name:
            return Decision_Abstain()
        user = USERS.get(name)
        shown = json.dumps(name, ensure_ascii=False)
        if user is None:
            return Decision_Deny(f"unknown user {shown}")
        if not user.password_matches(request.connect.pass_ or ""):
            return Decision_Deny(f"wrong password for user {shown}")
        return Decision_Allow(user.grant(name))
