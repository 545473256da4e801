/// <reference path="./interfaces/portcullis-authenticator-host.d.ts" />
/// <reference path="./interfaces/portcullis-authenticator-plugin.d.ts" />
/// <reference path="./interfaces/portcullis-authenticator-types.d.ts" />
declare module 'portcullis:authenticator/authenticator@0.1.0' {
  export type * as PortcullisAuthenticatorHost010 from 'portcullis:authenticator/host@0.1.0'; // import portcullis:authenticator/host@0.1.0
  export type * as PortcullisAuthenticatorTypes010 from 'portcullis:authenticator/types@0.1.0'; // import portcullis:authenticator/types@0.1.0
  export * as plugin from 'portcullis:authenticator/plugin@0.1.0'; // export portcullis:authenticator/plugin@0.1.0
}
