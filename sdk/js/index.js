// portcullis-sdk: helpers for Portcullis authentication plugins written in
// JavaScript and built with componentize-js. Decisions and grants with
// every WIT field defaulted, permissions, configuration checks that name
// the offending key, and a constant-time comparison.
//
// Plain JavaScript with no imports: it runs in the component (bundled into
// the plugin by its build) and under Node.js alike, so plugin logic can be
// tested without Wasm. The host functions (log, verifyPassword, ...) are
// imported by the plugin from 'portcullis:authenticator/host@0.1.0'.

/** Highest bcrypt cost the host's verify-password accepts. */
export const MAX_BCRYPT_COST = 14;

/** Allow the login with `grant` (see `grant()`). */
export function allow(grant) {
  return { tag: 'allow', val: grant };
}

/** Refuse the login; `reason` is logged and sent to the server (no secrets). */
export function deny(reason) {
  return { tag: 'deny', val: String(reason) };
}

/** Not this plugin's to decide: the next plugin in the chain is asked. */
export function abstain() {
  return { tag: 'abstain' };
}

/** Subject allow and deny lists; empty lists restrict nothing. */
export function permission(allow = [], deny = []) {
  return { allow: [...allow], deny: [...deny] };
}

/**
 * A grant for `account`, every other WIT field defaulted: no display name,
 * no restrictions, the plugin's max_expiry, no tags, any network and
 * connection type, no limits. `fields` overrides any of them by its WIT
 * name in camelCase (`displayName`, `expiresInSecs`, ...).
 */
export function grant(account, fields = {}) {
  return {
    account,
    displayName: undefined,
    publish: permission(),
    subscribe: permission(),
    response: undefined,
    expiresInSecs: undefined,
    tags: [],
    sourceCidrs: [],
    connectionTypes: [],
    ...fields,
    limits: { subs: undefined, data: undefined, payload: undefined, ...fields.limits },
  };
}

/** A configuration the plugin refuses; `plugin()` reports its message. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The plugin export: `configure` and `authenticate` as given, except that
 * an error thrown by `configure` is reported by its message (componentize-js
 * passes a thrown string to the host as the configuration error).
 */
export function plugin({ configure, authenticate }) {
  return {
    configure(config) {
      try {
        configure(config);
      } catch (e) {
        throw e instanceof Error ? e.message : e;
      }
    },
    authenticate,
  };
}

/** The configuration JSON, or a ConfigError saying why it is not JSON. */
export function parseConfig(config) {
  try {
    return JSON.parse(config);
  } catch (e) {
    throw new ConfigError(`invalid plugin configuration: ${e.message}`);
  }
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `value` when it is an object whose keys are all in `keys`; a typo must
 * not pass silently. `where` names the place in the configuration.
 */
export function only(where, value, keys) {
  if (!isObject(value)) throw new ConfigError(`${where} must be an object`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      throw new ConfigError(
        `${where}: unknown field \`${key}\`, expected one of ${keys.map((k) => `\`${k}\``).join(', ')}`,
      );
    }
  }
  return value;
}

/** A list of strings (`undefined` = empty). */
export function strings(where, value) {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string')) {
    throw new ConfigError(`${where} must be a list of strings`);
  }
  return value;
}

/** `{"allow": [...], "deny": [...]}` as a permission (`undefined` = none). */
export function subjectPermission(where, value) {
  if (value === undefined) return permission();
  only(where, value, ['allow', 'deny']);
  return permission(strings(`${where}.allow`, value.allow), strings(`${where}.deny`, value.deny));
}

/** True for an integer >= 0. */
export function natural(value) {
  return Number.isInteger(value) && value >= 0;
}

/** True when `s` looks like a bcrypt hash (`$2a$`, `$2b$`, `$2y$`). */
export function isBcryptHash(s) {
  return s.startsWith('$2a$') || s.startsWith('$2b$') || s.startsWith('$2y$');
}

/** The cost of a bcrypt hash, or undefined when it has none (4..31). */
export function bcryptCost(hash) {
  const m = /^\$2[aby]\$(\d\d)\$/.exec(hash);
  const cost = m ? Number(m[1]) : NaN;
  return cost >= 4 && cost <= 31 ? cost : undefined;
}

/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a, b) {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
