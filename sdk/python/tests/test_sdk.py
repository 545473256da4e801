"""The SDK's helpers under CPython, against the binding stubs
`componentize-py -d wit -w authenticator bindings DIR` writes (the test in
tests/tests/sdks.rs puts DIR on PYTHONPATH): the same dataclasses the
component uses, with host functions that raise NotImplementedError."""

import unittest

from componentize_py_types import Err
from wit_world.imports.types import Decision_Abstain, Decision_Allow, Decision_Deny, Grant, Limits, Permission

import portcullis_sdk as sdk


class Decisions(unittest.TestCase):
    def test_a_grant_has_every_wit_field_defaulted(self):
        self.assertEqual(
            sdk.grant("APP1"),
            Grant(
                account="APP1",
                display_name=None,
                publish=Permission(allow=[], deny=[]),
                subscribe=Permission(allow=[], deny=[]),
                response=None,
                expires_in_secs=None,
                tags=[],
                source_cidrs=[],
                connection_types=[],
                limits=Limits(subs=None, data=None, payload=None),
            ),
        )
        g = sdk.grant("APP2", publish=sdk.permission(["a.>"]), tags=("t",), limits=sdk.limits(subs=10))
        self.assertEqual(g.publish, Permission(allow=["a.>"], deny=[]))
        self.assertEqual(g.tags, ["t"])
        self.assertEqual(g.limits.subs, 10)

    def test_decisions_are_the_wit_variant(self):
        self.assertIsInstance(sdk.allow(sdk.grant("A")), Decision_Allow)
        self.assertEqual(sdk.deny("no"), Decision_Deny("no"))
        self.assertIsInstance(sdk.abstain(), Decision_Abstain)


class Configuration(unittest.TestCase):
    def test_checks_name_the_key(self):
        with self.assertRaisesRegex(sdk.ConfigError, r"^u: unknown field `pas`, expected one of `pass`$"):
            sdk.only("u", {"pas": 1}, ["pass"])
        with self.assertRaisesRegex(sdk.ConfigError, "^x must be an object$"):
            sdk.only("x", [], ["a"])
        with self.assertRaisesRegex(sdk.ConfigError, "^x must be a list of strings$"):
            sdk.strings("x", ["a", 1])
        self.assertEqual(sdk.subject_permission("p", {"deny": ["a"]}), Permission(allow=[], deny=["a"]))
        with self.assertRaisesRegex(sdk.ConfigError, "^invalid plugin configuration: "):
            sdk.parse_config("{")
        self.assertFalse(sdk.natural(True))
        self.assertTrue(sdk.natural(0))

    def test_configuring_turns_a_config_error_into_err(self):
        with self.assertRaises(Err) as raised:
            with sdk.configuring():
                raise sdk.ConfigError("bad")
        self.assertEqual(raised.exception.value, "bad")

    def test_bcrypt_and_constant_time_comparison(self):
        self.assertEqual(sdk.bcrypt_cost("$2b$12$abc"), 12)
        self.assertIsNone(sdk.bcrypt_cost("$2b$99$abc"))
        self.assertTrue(sdk.is_bcrypt_hash("$2y$10$x"))
        self.assertTrue(sdk.constant_time_eq("secret", "secret"))
        self.assertFalse(sdk.constant_time_eq("secret", "secrets"))


if __name__ == "__main__":
    unittest.main()
