// The SDK's helpers under Node.js (they import nothing from the WIT).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  abstain,
  allow,
  bcryptCost,
  constantTimeEqual,
  deny,
  grant,
  only,
  parseConfig,
  permission,
  plugin,
  strings,
  subjectPermission,
} from '../index.js';

test('a grant has every WIT field, defaulted', () => {
  assert.deepEqual(grant('APP1'), {
    account: 'APP1',
    displayName: undefined,
    publish: { allow: [], deny: [] },
    subscribe: { allow: [], deny: [] },
    response: undefined,
    expiresInSecs: undefined,
    tags: [],
    sourceCidrs: [],
    connectionTypes: [],
    limits: { subs: undefined, data: undefined, payload: undefined },
  });
  const g = grant('APP2', { publish: permission(['a.>']), limits: { subs: 10n }, expiresInSecs: 60n });
  assert.deepEqual(g.publish, { allow: ['a.>'], deny: [] });
  assert.deepEqual(g.limits, { subs: 10n, data: undefined, payload: undefined });
  assert.equal(g.expiresInSecs, 60n);
});

test('decisions are the WIT variant', () => {
  assert.deepEqual(allow(grant('A')).tag, 'allow');
  assert.deepEqual(deny('no'), { tag: 'deny', val: 'no' });
  assert.deepEqual(abstain(), { tag: 'abstain' });
});

test('configuration checks name the key', () => {
  assert.throws(() => only('user "a"', { pas: 1 }, ['pass']), {
    name: 'ConfigError',
    message: 'user "a": unknown field `pas`, expected one of `pass`',
  });
  assert.throws(() => only('x', [], ['a']), { message: 'x must be an object' });
  assert.throws(() => strings('x', ['a', 1]), { message: 'x must be a list of strings' });
  assert.deepEqual(strings('x', undefined), []);
  assert.deepEqual(subjectPermission('p', { deny: ['a'] }), { allow: [], deny: ['a'] });
  assert.throws(() => parseConfig('{'), (e) => e instanceof ConfigError && e.message.startsWith('invalid plugin configuration: '));
});

test('configure errors reach the host as their message', () => {
  const p = plugin({
    configure() {
      throw new ConfigError('bad');
    },
    authenticate: () => abstain(),
  });
  assert.throws(() => p.configure('{}'), (e) => e === 'bad');
});

test('bcrypt costs and constant-time comparison', () => {
  assert.equal(bcryptCost('$2b$12$abc'), 12);
  assert.equal(bcryptCost('$2b$99$abc'), undefined);
  assert.equal(bcryptCost('$2b$x'), undefined);
  assert.ok(constantTimeEqual('secret', 'secret'));
  assert.ok(!constantTimeEqual('secret', 'secreT'));
  assert.ok(!constantTimeEqual('secret', 'secrets'));
});
