// The static-users plugin in JavaScript: the nats-by-example user
// directory (users.json), with the same answers as plugins/static-users.
//
// Configuration: {"alice": {"pass": "alice", "account": "APP1"}, "bob":
// {"pass": "$2b$...", "account": "APP2", "permissions": {"pub": {"allow":
// ["bob.>"]}, "sub": {"allow": ["bob.>"]}, "resp": {"max": 1}}}}.
// `pass` is plaintext or a bcrypt hash (checked by the host's
// verify-password). A login without a user name is not this plugin's to
// decide (abstain); an unknown user or a wrong password is denied.

import { log, verifyPassword } from 'portcullis:authenticator/host@0.1.0';

/** Highest bcrypt cost the host verifies. */
const MAX_BCRYPT_COST = 14;
const BCRYPT = /^\$2[aby]\$(\d\d)\$/;

/** user name -> entry, built by `configure`. */
let users = new Map();

/** Refuse keys the format does not have: a typo must not pass silently. */
function only(where, object, keys) {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw `${where} must be an object`;
  }
  for (const key of Object.keys(object)) {
    if (!keys.includes(key)) {
      throw `${where}: unknown field \`${key}\`, expected one of ${keys.map((k) => `\`${k}\``).join(', ')}`;
    }
  }
  return object;
}

function strings(where, list) {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw `${where} must be a list of strings`;
  }
  return list;
}

function subjectList(where, list) {
  if (list === undefined) return { allow: [], deny: [] };
  only(where, list, ['allow', 'deny']);
  return { allow: strings(`${where}.allow`, list.allow), deny: strings(`${where}.deny`, list.deny) };
}

function parseUser(name, entry) {
  const where = `user ${JSON.stringify(name)}`;
  only(where, entry, ['pass', 'account', 'permissions']);
  if (typeof entry.pass !== 'string') throw `${where}: missing field \`pass\``;
  if (typeof entry.account !== 'string') throw `${where}: missing field \`account\``;
  if (entry.account === '') throw `${where} has an empty account`;
  const bcrypt = entry.pass.startsWith('$2a$') || entry.pass.startsWith('$2b$') || entry.pass.startsWith('$2y$');
  if (bcrypt) {
    const m = BCRYPT.exec(entry.pass);
    const cost = m ? Number(m[1]) : NaN;
    if (!(cost >= 4 && cost <= 31)) throw `${where} has a malformed bcrypt hash`;
    if (cost > MAX_BCRYPT_COST) {
      throw `${where} has a bcrypt cost of ${cost}, above the host's maximum of ${MAX_BCRYPT_COST}`;
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
      if (!Number.isInteger(max) || max < 0 || !Number.isInteger(ttl) || ttl < 0) {
        throw `${where}.permissions.resp: max and ttl must be non-negative integers`;
      }
      // ttl is nanoseconds, as Go's time.Duration serialises.
      response = { max, ttlMs: BigInt(ttl) / 1000000n };
    }
    permissions = {
      publish: subjectList(`${where}.permissions.pub`, p.pub),
      subscribe: subjectList(`${where}.permissions.sub`, p.sub),
      response,
    };
  }
  return { pass: entry.pass, bcrypt, account: entry.account, permissions };
}

/** Compares in time that depends only on the lengths. */
function constantTimeEqual(a, b) {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

function passwordMatches(user, given) {
  return user.bcrypt ? verifyPassword(given, user.pass) : constantTimeEqual(user.pass, given);
}

function grantFor(name, user) {
  const p = user.permissions;
  return {
    account: user.account,
    displayName: name,
    publish: p ? p.publish : { allow: [], deny: [] },
    subscribe: p ? p.subscribe : { allow: [], deny: [] },
    response: p ? p.response : undefined,
    expiresInSecs: undefined,
    tags: [],
    sourceCidrs: [],
    connectionTypes: [],
    limits: { subs: undefined, data: undefined, payload: undefined },
  };
}

export const plugin = {
  /** Throwing a string rejects the configuration with that message. */
  configure(config) {
    let parsed;
    try {
      parsed = JSON.parse(config);
    } catch (e) {
      throw `invalid plugin configuration: ${e.message}`;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw 'invalid plugin configuration: expected an object of users';
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
    if (name === undefined || name === '') return { tag: 'abstain' };
    const user = users.get(name);
    if (user === undefined) return { tag: 'deny', val: `unknown user ${JSON.stringify(name)}` };
    if (!passwordMatches(user, request.connect.pass ?? '')) {
      return { tag: 'deny', val: `wrong password for user ${JSON.stringify(name)}` };
    }
    return { tag: 'allow', val: grantFor(name, user) };
  },
};
