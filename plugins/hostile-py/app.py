"""Test fixture: a Python plugin that misbehaves on purpose, so the tests
can show a broken Python plugin costs a denied login and nothing more.

Configuration: {"attack": "raise", "user": "mallory"}. The attack runs when
the connecting user is `user` (or in `configure` for the `configure-*`
attacks); every other login is abstained.

Built with componentize-py like static-users-py (--stub-wasi).
"""

import json

from componentize_py_types import Err
from wit_world.exports import Plugin as PluginInterface
from wit_world.imports.types import Decision_Abstain, Decision_Allow


def raise_():
    raise RuntimeError("hostile-py: raised on purpose")


def malformed_grant():
    # A grant that is not a Grant.
    return Decision_Allow(value={"account": "APP1"})


def not_a_decision():
    return "allow"


def busy_loop():
    while True:
        pass


ATTACKS = {
    "raise": raise_,
    "malformed-grant": malformed_grant,
    "not-a-decision": not_a_decision,
    "busy-loop": busy_loop,
}

STATE = {"attack": None, "user": "mallory"}


class Plugin(PluginInterface):
    def configure(self, config: str) -> None:
        parsed = json.loads(config)
        attack = parsed.get("attack")
        if attack == "configure-raise":
            # Not the Err the contract asks for.
            raise ValueError("hostile-py: configure raises")
        if attack == "configure-reject":
            raise Err("hostile-py rejects every configuration")
        if attack not in ATTACKS:
            raise Err(f"unknown attack {attack!r}")
        STATE["attack"] = ATTACKS[attack]
        STATE["user"] = parsed.get("user", "mallory")

    def authenticate(self, request):
        if request.connect.user != STATE["user"]:
            return Decision_Abstain()
        return STATE["attack"]()
