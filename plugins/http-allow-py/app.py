"""Example: a Python plugin that asks an HTTP service whether a user may
log in, through `wasi:http/outgoing-handler` under the plugin's `http`
grant. The Python twin of plugins/http-allow-js.

Configuration: {"url": "https://allow.example.com/check", "account": "APP1"}.
Each login with a user name becomes `GET URL?user=NAME`; the service answers
{"allowed": true} or {"allowed": false, "reason": "..."}. A login without a
user name is not this plugin's (abstain); a refused request, a timeout, a
non-2xx status or an answer that is not that JSON denies.

In portcullis.toml the service's origin must be granted:
  grants = { http = ["https://allow.example.com"] }

Built with componentize-py WITHOUT --stub-wasi (a stubbed wasi:http could
not send anything), against wit/world.wit: the 0.1.0 authenticator world
plus wasi:http/outgoing-handler (scripts/build-plugins; the command is in
docs/writing-plugins.md). CPython then also imports wasi:filesystem and
wasi:sockets, which the host links with nothing behind them. The host
bounds every request (the grant's origins, the login's deadline, the
response-size cap), so this code only turns its outcome into a decision.
"""

import json
from urllib.parse import quote, urlsplit

from componentize_py_types import Err, Ok
from portcullis_sdk import ConfigError, abstain, allow, configuring, deny, grant, only, parse_config
from wit_world.exports import Plugin as PluginInterface
from wit_world.imports import host, outgoing_handler
from wit_world.imports.http_types import Fields, OutgoingRequest, Scheme_Http, Scheme_Https
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import AuthRequest, Decision

#: Largest answer read: {"allowed": ..., "reason": ...} is far smaller.
MAX_ANSWER_BYTES = 64 * 1024

URL = None
ACCOUNT = ""


class Refused(Exception):
    """The request failed: the reason a denied login carries."""


def error_name(code) -> str:
    """`ErrorCode_HttpRequestDenied()` -> `HttpRequestDenied`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    return name if value is None else f"{name} ({value})"


def get(user: str):
    """GET URL?user=USER: the status and at most MAX_ANSWER_BYTES of body."""
    request = OutgoingRequest(Fields.from_list([("accept", b"application/json")]))
    request.set_scheme(Scheme_Https() if URL.scheme == "https" else Scheme_Http())
    request.set_authority(URL.netloc)
    request.set_path_with_query(f"{URL.path or '/'}?user={quote(user, safe='')}")
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise Refused(error_name(e.value)) from None
    # Resources are closed child first (`with`), as wasi:http requires.
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if not isinstance(outcome, Ok) or not isinstance(outcome.value, Ok):
        raise Refused(error_name(outcome.value.value) if isinstance(outcome, Ok) else "no response")
    with outcome.value.value as response:
        status = response.status()
        with response.consume() as body, body.stream() as stream:
            data = b""
            while len(data) <= MAX_ANSWER_BYTES:
                try:
                    data += stream.blocking_read(MAX_ANSWER_BYTES + 1 - len(data))
                except Err as e:
                    if isinstance(e.value, StreamError_Closed):
                        return status, data
                    raise Refused("the answer was cut off") from None
    raise Refused(f"answer larger than {MAX_ANSWER_BYTES} bytes")


class Plugin(PluginInterface):
    def configure(self, config: str) -> None:
        global URL, ACCOUNT
        with configuring():
            parsed = only("configuration", parse_config(config), ["url", "account"])
            url = urlsplit(parsed.get("url")) if isinstance(parsed.get("url"), str) else None
            if url is None or url.scheme not in ("http", "https") or not url.hostname or "@" in url.netloc:
                raise ConfigError("url: an http:// or https:// URL")
            if not isinstance(parsed.get("account"), str) or parsed["account"] == "":
                raise ConfigError("account: a non-empty account name")
            URL, ACCOUNT = url, parsed["account"]

    def authenticate(self, request: AuthRequest) -> Decision:
        user = request.connect.user
        if not user:
            return abstain()
        try:
            status, data = get(user)
        except Refused as e:
            host.log(host.Level.WARN, f"allow-list service: {e}")
            return deny(f"allow-list service unreachable: {e}")
        if not 200 <= status <= 299:
            return deny(f"allow-list service answered HTTP status {status}")
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("allowed"), bool):
            return deny('allow-list service answer is not {"allowed": true|false}')
        if not answer["allowed"]:
            reason = answer.get("reason")
            return deny("not on the allow list" + (f": {reason[:200]}" if isinstance(reason, str) else ""))
        return allow(grant(ACCOUNT, display_name=user))
