// The static-users plugin in JavaScript: the nats-by-example user
// directory (users.json), with the same answers as plugins/static-users.
//
// Configuration: {"alice": {"pass": "alice", "account": "APP1"}, "bob":
// {"pass": "$2b$...", "account": "APP2", "permissions": {"pub": {"allow":
// ["bob.>"]}, "sub": {"allow": ["bob.>"]}, "resp": {"max": 1}}}}.
// `pass` is plaintext or a bcrypt hash (checked by the host's
// verify-password). A login without a user name is not this plugin's to
// decide (abstain); an unknown user or a wrong password is denied.
//
// Decisions, grants and configuration checks come from portcullis-sdk
// (sdk/js); build.mjs bundles it into the one module componentize-js takes.

import { log, verifyPassword } from 'portcullis:authenticator/host@0.1.0';
import {
  ConfigError,
  MAX_BCRYPT_COST,
  abstain,
  allow,
  bcryptCost,
  constantTimeEqual,
  deny,
  grant,
  isBcryptHash,
  natural,
  only,
  parseConfig,
  plugin as definePlugin,
  subjectPermission,
} from 'portcullis-sdk';

/** user name -> entry, built by `configure`. */
let users = new Map();

function parseUser(name, entry) {
  const where = `user ${JSON.stringify(name)}`;
  only(where, entry, ['pass', 'account', 'permissions']);
  if (typeof entry.pass !== 'string') throw new ConfigError(`${where}: missing field \`pass\``);
  if (typeof entry.account !== 'string') throw new ConfigError(`${where}: missing field \`account\``);
  if (entry.account === '') throw new ConfigError(`${where} has an empty account`);
  const bcrypt = isBcryptHash(entry.pass);
  if (bcrypt) {
    const cost = bcryptCost(entry.pass);
    if (cost === undefined) throw new ConfigError(`${where} has a malformed bcrypt hash`);
    if (cost > MAX_BCRYPT_COST) {
      throw new ConfigError(`${where} has a bcrypt cost of ${cost}, above the host's maximum of ${MAX_BCRYPT_COST}`);
    }
  }
  let permissions = null;
  if (entry.permissions !== undefined && entry.permissions !== null) {
    const p = only(`${where}.permissions`, entry.permissions, ['pub', 'sub', 'resp']);
    let response;
    if (p.resp !== undefined && p.resp !== null) {
      const r = only(`${where}.permissions.resp`, p.resp, ['max', 'ttl']);
      const max = r.max ?? 0;
      const ttl = r.ttl ?? 0;
      if (!natural(max) || !natural(ttl)) {
        throw new ConfigError(`${where}.permissions.resp: max and ttl must be non-negative integers`);
      }
      // ttl is nanoseconds, as Go's time.Duration serialises.
      response = { max, ttlMs: BigInt(ttl) / 1000000n };
    }
    permissions = {
      publish: subjectPermission(`${where}.permissions.pub`, p.pub),
      subscribe: subjectPermission(`${where}.permissions.sub`, p.sub),
      response,
    };
  }
  return { pass: entry.pass, bcrypt, account: entry.account, permissions };
}

function passwordMatches(user, given) {
  return user.bcrypt ? verifyPassword(given, user.pass) : constantTimeEqual(user.pass, given);
}

export const plugin = definePlugin({
  /** A ConfigError rejects the configuration with its message. */
  configure(config) {
    const parsed = parseConfig(config);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError('invalid plugin configuration: expected an object of users');
    }
    const next = new Map();
    for (const [name, entry] of Object.entries(parsed)) {
      next.set(name, parseUser(name, entry));
    }
    users = next;
    log('debug', `static-users-js: ${users.size} users`);
  },

  authenticate(request) {
    const name = request.connect.user;
    if (name === undefined || name === '') return abstain();
    const user = users.get(name);
    if (user === undefined) return deny(`unknown user ${JSON.stringify(name)}`);
    if (!passwordMatches(user, request.connect.pass ?? '')) {
      return deny(`wrong password for user ${JSON.stringify(name)}`);
    }
    return allow(grant(user.account, { displayName: name, ...user.permissions }));
  },
});
