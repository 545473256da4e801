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
and printing traps; log through `host.log`. Decisions, grants and
configuration checks come from portcullis_sdk (sdk/python).
"""

import json

from portcullis_sdk import (
    MAX_BCRYPT_COST,
    ConfigError,
    abstain,
    allow,
    bcrypt_cost,
    configuring,
    constant_time_eq,
    deny,
    grant,
    is_bcrypt_hash,
    natural,
    only,
    parse_config,
    permission,
    response_permission,
    subject_permission,
)
from wit_world.exports import Plugin as PluginInterface
from wit_world.imports import host
from wit_world.imports.types import AuthRequest, Decision


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
        self.bcrypt = is_bcrypt_hash(self.password)
        if self.bcrypt:
            cost = bcrypt_cost(self.password)
            if cost is None:
                raise ConfigError(f"{where} has a malformed bcrypt hash")
            if cost > MAX_BCRYPT_COST:
                raise ConfigError(
                    f"{where} has a bcrypt cost of {cost}, above the host's maximum of {MAX_BCRYPT_COST}"
                )
        self.publish = permission()
        self.subscribe = permission()
        self.response = None
        permissions = entry.get("permissions")
        if permissions is not None:
            p = only(f"{where}.permissions", permissions, ["pub", "sub", "resp"])
            self.publish = subject_permission(f"{where}.permissions.pub", p.get("pub"))
            self.subscribe = subject_permission(f"{where}.permissions.sub", p.get("sub"))
            if p.get("resp") is not None:
                r = only(f"{where}.permissions.resp", p["resp"], ["max", "ttl"])
                max_, ttl = r.get("max", 0), r.get("ttl", 0)
                if not natural(max_) or not natural(ttl):
                    raise ConfigError(
                        f"{where}.permissions.resp: max and ttl must be non-negative integers"
                    )
                # ttl is nanoseconds, as Go's time.Duration serialises.
                self.response = response_permission(max_, ttl // 1_000_000)

    def password_matches(self, given):
        if self.bcrypt:
            return host.verify_password(given, self.password)
        return constant_time_eq(self.password, given)

    def grant(self, name):
        return grant(
            self.account,
            display_name=name,
            publish=self.publish,
            subscribe=self.subscribe,
            response=self.response,
        )


USERS = {}


class Plugin(PluginInterface):
    def configure(self, config: str) -> None:
        global USERS
        with configuring():
            parsed = parse_config(config)
            if not isinstance(parsed, dict):
                raise ConfigError("invalid plugin configuration: expected an object of users")
            USERS = {name: User(name, entry) for name, entry in parsed.items()}
        host.log(host.Level.DEBUG, f"static-users-py: {len(USERS)} users")

    def authenticate(self, request: AuthRequest) -> Decision:
        name = request.connect.user
        if not name:
            return abstain()
        user = USERS.get(name)
        shown = json.dumps(name, ensure_ascii=False)
        if user is None:
            return deny(f"unknown user {shown}")
        if not user.password_matches(request.connect.pass_ or ""):
            return deny(f"wrong password for user {shown}")
        return allow(user.grant(name))
