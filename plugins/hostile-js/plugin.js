// Test fixture: a JavaScript plugin that misbehaves on purpose, so the
// tests can show a broken JS plugin costs a denied login and nothing more.
//
// Configuration: {"attack": "throw", "user": "mallory"}. The attack runs
// when the connecting user is `user` (or in `configure` for the
// `configure-*` attacks); every other login is abstained.
//
// Built with the static-users-js toolchain:
//   node ../static-users-js/build.mjs --source plugin.js --wit ../../wit --out X.wasm

let attack = null;
let target = 'mallory';

const ATTACKS = {
  // An exception out of `authenticate`.
  throw() {
    throw new Error('hostile-js: thrown on purpose');
  },
  // A decision the bindings cannot lower: no such variant case.
  'malformed-variant'() {
    return { tag: 'maybe', val: 'who knows' };
  },
  // A grant with the wrong types: account is a number, lists missing.
  'malformed-grant'() {
    return { tag: 'allow', val: { account: 42 } };
  },
  // Not a decision at all.
  'not-a-decision'() {
    return 'allow';
  },
  // Never returns.
  'busy-loop'() {
    for (;;) {}
  },
};

export const plugin = {
  configure(config) {
    const parsed = JSON.parse(config);
    if (parsed.attack === 'configure-throw') {
      // An Error object, not the string the contract asks for.
      throw new Error('hostile-js: configure throws an Error');
    }
    if (parsed.attack === 'configure-reject') throw 'hostile-js rejects every configuration';
    if (!(parsed.attack in ATTACKS)) throw `unknown attack ${JSON.stringify(parsed.attack)}`;
    attack = ATTACKS[parsed.attack];
    target = parsed.user ?? target;
  },

  authenticate(request) {
    if (request.connect.user !== target) return { tag: 'abstain' };
    return attack();
  },
};
