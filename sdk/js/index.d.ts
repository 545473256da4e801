// Types of portcullis-sdk, against the WIT types in types/ (generated from
// wit/authenticator.wit by scripts/generate-types.mjs; do not edit those).
// Importing 'portcullis-sdk' also declares the WIT modules a plugin
// imports, e.g. 'portcullis:authenticator/host@0.1.0'.
/// <reference path="./types/authenticator.d.ts" />

import type {
  AuthRequest,
  Decision,
  DecisionAbstain,
  DecisionAllow,
  DecisionDeny,
  Grant,
  Limits,
  Permission,
  ResponsePermission,
} from 'portcullis:authenticator/types@0.1.0';

export type {
  AuthRequest,
  ClientInfo,
  ConnectOptions,
  Decision,
  DecisionAbstain,
  DecisionAllow,
  DecisionDeny,
  Grant,
  Limits,
  Permission,
  ResponsePermission,
  ServerInfo,
  TlsInfo,
} from 'portcullis:authenticator/types@0.1.0';
export type { Level } from 'portcullis:authenticator/host@0.1.0';

/** Highest bcrypt cost the host's verify-password accepts. */
export const MAX_BCRYPT_COST: 14;

/** Allow the login with `grant`. */
export function allow(grant: Grant): DecisionAllow;
/** Refuse the login; the reason is logged and sent to the server. */
export function deny(reason: string): DecisionDeny;
/** Not this plugin's to decide: the next plugin in the chain is asked. */
export function abstain(): DecisionAbstain;

/** Subject allow and deny lists; empty lists restrict nothing. */
export function permission(allow?: Iterable<string>, deny?: Iterable<string>): Permission;

/** Grant fields other than the account, each optional. */
export type GrantFields = Partial<Omit<Grant, 'account' | 'limits'>> & { limits?: Partial<Limits> };
/** A grant for `account`, every other WIT field defaulted (no restrictions). */
export function grant(account: string, fields?: GrantFields): Grant;

/** A configuration the plugin refuses; `plugin()` reports its message. */
export class ConfigError extends Error {}

/** What a plugin implements: the WIT interface portcullis:authenticator/plugin. */
export interface Plugin {
  /** Parse the configuration (JSON); throw (e.g. a ConfigError) to refuse it. */
  configure(config: string): void;
  /** Decide one login. */
  authenticate(request: AuthRequest): Decision;
}
/** The plugin export; errors thrown by `configure` are reported by message. */
export function plugin(plugin: Plugin): Plugin;

/** The configuration JSON, or a ConfigError saying why it is not JSON. */
export function parseConfig(config: string): unknown;
/** `value` when it is an object whose keys are all in `keys`. */
export function only<K extends string>(where: string, value: unknown, keys: readonly K[]): { [key in K]?: unknown };
/** A list of strings (`undefined` = empty). */
export function strings(where: string, value: unknown): string[];
/** `{"allow": [...], "deny": [...]}` as a permission (`undefined` = none). */
export function subjectPermission(where: string, value: unknown): Permission;
/** True for an integer >= 0. */
export function natural(value: unknown): value is number;
/** True when `s` looks like a bcrypt hash (`$2a$`, `$2b$`, `$2y$`). */
export function isBcryptHash(s: string): boolean;
/** The cost of a bcrypt hash (4..31), or undefined when it has none. */
export function bcryptCost(hash: string): number | undefined;
/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean;
