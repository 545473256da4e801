// Example: a JavaScript plugin that asks an HTTP service whether a user may
// log in, with `fetch` under the plugin's `http` grant.
//
// Configuration: {"url": "https://allow.example.com/check", "account": "APP1"}.
// Each login with a user name becomes `GET URL?user=NAME`; the service
// answers {"allowed": true} or {"allowed": false, "reason": "..."}. A login
// without a user name is not this plugin's (abstain); a refused request, a
// timeout, a non-2xx status or an answer that is not that JSON denies.
//
// In portcullis.toml the service's origin must be granted:
//   grants = { http = ["https://allow.example.com"] }
//
// Built with the static-users-js toolchain, with fetch enabled:
//   node ../static-users-js/build.mjs --http --source plugin.js --wit ../../wit/v0.1.0 --out X.wasm

import { log } from 'portcullis:authenticator/host@0.1.0';
import {
  ConfigError,
  abstain,
  allow,
  deny,
  grant,
  only,
  parseConfig,
  plugin as definePlugin,
} from 'portcullis-sdk';

let url = '';
let account = '';

export const plugin = definePlugin({
  configure(config) {
    const parsed = parseConfig(config);
    only('configuration', parsed, ['url', 'account']);
    if (typeof parsed.url !== 'string' || !/^https?:\/\/[^/@]+/.test(parsed.url)) {
      throw new ConfigError('url: an http:// or https:// URL');
    }
    if (typeof parsed.account !== 'string' || parsed.account === '') {
      throw new ConfigError('account: a non-empty account name');
    }
    url = parsed.url;
    account = parsed.account;
  },

  // componentize-js runs the event loop until the returned promise settles,
  // so the export stays a plain (synchronous) component function.
  async authenticate(request) {
    const user = request.connect.user;
    if (user === undefined || user === '') return abstain();
    let answer;
    try {
      const response = await fetch(`${url}?user=${encodeURIComponent(user)}`, {
        headers: { accept: 'application/json' },
      });
      if (!response.ok) return deny(`allow-list service answered HTTP status ${response.status}`);
      answer = await response.json();
    } catch (e) {
      log('warn', `allow-list service: ${e}`);
      return deny(`allow-list service unreachable: ${e instanceof Error ? e.message : e}`);
    }
    if (answer === null || typeof answer !== 'object' || typeof answer.allowed !== 'boolean') {
      return deny('allow-list service answer is not {"allowed": true|false}');
    }
    if (!answer.allowed) {
      const reason = typeof answer.reason === 'string' ? `: ${answer.reason.slice(0, 200)}` : '';
      return deny(`not on the allow list${reason}`);
    }
    return allow(grant(account, { displayName: user }));
  },
});
