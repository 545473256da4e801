declare module 'portcullis:authenticator/host@0.1.0' {
  /**
   * Write a line to the host log, tagged with the plugin's name. The host
   * truncates long messages, shows control characters escaped (`\n`)
   * and drops lines past the per-call budget the operator sets.
   */
  export function log(level: Level, message: string): void;
  /**
   * Wall-clock time, milliseconds since the Unix epoch.
   */
  export function nowUnixMs(): bigint;
  /**
   * True when `signature` (base64url, raw or padded, as NATS clients send
   * it) is a valid ed25519 signature by `public-key` (an NKey, e.g. U...)
   * over the bytes of `nonce`.
   */
  export function verifyNkeySignature(publicKey: string, nonce: string, signature: string): boolean;
  /**
   * True when `password` matches `hash`, a bcrypt hash (`$2a$`, `$2b$`,
   * `$2y$`, as `nats server passwd` and nats-by-example users.json write
   * them). Anything else, including a plaintext "hash", is false. Runs in
   * the host, natively, and counts against the call's deadline; hashes
   * with a cost above 14 are refused (false). Added in 0.1.0 after the
   * first release: hosts that predate it refuse plugins that import it at
   * load ("component imports something this host does not provide").
   */
  export function verifyPassword(password: string, hash: string): boolean;
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
