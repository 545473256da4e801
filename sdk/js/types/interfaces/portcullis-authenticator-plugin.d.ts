/// <reference path="./portcullis-authenticator-types.d.ts" />
declare module 'portcullis:authenticator/plugin@0.1.0' {
  /**
   * Called once per instance before any `authenticate`, with the plugin's
   * configuration as a JSON string (`config` or `config_file` in the host
   * configuration; "{}" when none). Parse tables here, not per login.
   * An error keeps this plugin from serving and is reported by the host.
   */
  export function configure(config: string): void;
  /**
   * Decide one login.
   */
  export function authenticate(request: AuthRequest): Decision;
  export type AuthRequest = import('portcullis:authenticator/types@0.1.0').AuthRequest;
  export type Decision = import('portcullis:authenticator/types@0.1.0').Decision;
}
