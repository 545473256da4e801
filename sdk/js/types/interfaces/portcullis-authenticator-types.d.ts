declare module 'portcullis:authenticator/types@0.1.0' {
  /**
   * The nats-server that asks for the decision (request `nats.server_id`).
   */
  export interface ServerInfo {
    /**
     * Server name (`server_name` in its config, or its id).
     */
    name: string,
    /**
     * Host the server listens on for clients.
     */
    host: string,
    /**
     * Server public key (N...), unique per server process.
     */
    id: string,
    /**
     * nats-server version, e.g. "2.11.4".
     */
    version: string,
    /**
     * Cluster name, empty when not clustered.
     */
    cluster: string,
    /**
     * Tags from the server's configuration.
     */
    tags: Array<string>,
  }
  /**
   * What the server knows about the connecting client (`nats.client_info`).
   */
  export interface ClientInfo {
    /**
     * Client address as the server sees it (IP, no port).
     */
    host: string,
    /**
     * Connection id on that server.
     */
    id: bigint,
    /**
     * Raw user the client authenticated as so far (often empty).
     */
    user: string,
    /**
     * Client name from CONNECT.
     */
    name: string,
    /**
     * Client tags.
     */
    tags: Array<string>,
    /**
     * Name tag, when the client has one.
     */
    nameTag: string,
    /**
     * Connection kind: "Client", "Leafnode", ...
     */
    kind: string,
    /**
     * Connection type: "nats", "websocket", "mqtt", "leafnode", ...
     */
    connectionType: string,
    /**
     * MQTT client id for MQTT connections, else empty.
     */
    mqttId: string,
    /**
     * The nonce the server sent this client. Set only when the client
     * signed it (`connect-options.sig`): check it with
     * `host.verify-nkey-signature`.
     */
    nonce: string,
  }
  /**
   * The client's CONNECT options (`nats.connect_opts`). Absent options are
   * `none`, never an empty string.
   */
  export interface ConnectOptions {
    /**
     * User name.
     */
    user?: string,
    /**
     * Password (plaintext, as the client sent it).
     */
    pass?: string,
    /**
     * Authentication token.
     */
    token?: string,
    /**
     * User JWT, for clients that present one.
     */
    jwt?: string,
    /**
     * User public NKey (U...), for NKey challenge logins.
     */
    nkey?: string,
    /**
     * Signature over `client-info.nonce`, base64url (raw) as the client sent it.
     */
    sig?: string,
    /**
     * Client connection name.
     */
    name?: string,
    /**
     * Client library language, e.g. "rust", "go".
     */
    lang?: string,
    /**
     * Client library version.
     */
    version?: string,
    /**
     * NATS protocol version the client speaks.
     */
    protocol: number,
  }
  /**
   * TLS state of the connection (`nats.client_tls`).
   */
  export interface TlsInfo {
    /**
     * TLS version, e.g. "1.3".
     */
    version: string,
    /**
     * Negotiated cipher suite.
     */
    cipher: string,
    /**
     * Peer certificates (PEM), when the server did not verify them.
     */
    certs: Array<string>,
    /**
     * Verified chains (PEM), leaf first, when the server verified them.
     */
    verifiedChains: Array<Array<string>>,
  }
  /**
   * One login attempt, as the verified authorization request describes it.
   */
  export interface AuthRequest {
    /**
     * The server asking.
     */
    server: ServerInfo,
    /**
     * The fresh user public key the server generated for this login; the
     * host issues the user JWT for it (the plugin need not use it).
     */
    userNkey: string,
    /**
     * The client.
     */
    client: ClientInfo,
    /**
     * The client's CONNECT options.
     */
    connect: ConnectOptions,
    /**
     * TLS information, when the client connected over TLS.
     */
    tls?: TlsInfo,
  }
  /**
   * Allow and deny lists of subjects for publish or subscribe.
   * Empty lists mean "no restriction from this list".
   */
  export interface Permission {
    /**
     * Subjects allowed (wildcards `*` and `>` permitted).
     */
    allow: Array<string>,
    /**
     * Subjects denied; deny wins over allow.
     */
    deny: Array<string>,
  }
  /**
   * Permission to publish to reply subjects of received requests.
   */
  export interface ResponsePermission {
    /**
     * How many responses per request may be published.
     */
    max: number,
    /**
     * For how long after the request, in milliseconds (0 = no limit).
     */
    ttlMs: bigint,
  }
  /**
   * Connection limits a NATS user JWT carries. `none` = unlimited.
   */
  export interface Limits {
    /**
     * Maximum subscriptions.
     */
    subs?: bigint,
    /**
     * Maximum bytes in flight.
     */
    data?: bigint,
    /**
     * Maximum message payload size in bytes.
     */
    payload?: bigint,
  }
  /**
   * What an allowed user may do. The host checks every field against its
   * own policy (accounts this plugin may use, maximum expiry, well-formed
   * subjects) before it signs anything.
   */
  export interface Grant {
    /**
     * Name of the account the user is placed in (e.g. "APP1").
     */
    account: string,
    /**
     * Display name for the user (shows in monitoring), optional.
     */
    displayName?: string,
    /**
     * Publish permissions.
     */
    publish: Permission,
    /**
     * Subscribe permissions.
     */
    subscribe: Permission,
    /**
     * Response permission, optional.
     */
    response?: ResponsePermission,
    /**
     * Lifetime of the user JWT in seconds from now. `none` = the plugin's
     * `max_expiry` from the host configuration; larger values are refused.
     */
    expiresInSecs?: bigint,
    /**
     * Tags for the user JWT.
     */
    tags: Array<string>,
    /**
     * Source networks (CIDRs) the client must connect from; empty = any.
     * Enforced by the host against `client-info.host`.
     */
    sourceCidrs: Array<string>,
    /**
     * Connection types allowed ("STANDARD", "WEBSOCKET", "MQTT", "LEAFNODE",
     * ...); empty = any. Enforced by the host.
     */
    connectionTypes: Array<string>,
    /**
     * Connection limits.
     */
    limits: Limits,
  }
  /**
   * The plugin's answer.
   */
  export type Decision = DecisionAllow | DecisionDeny | DecisionAbstain;
  /**
   * This login is this user, with these permissions.
   */
  export interface DecisionAllow {
    tag: 'allow',
    val: Grant,
  }
  /**
   * This login is refused; the reason is logged and sent to the server
   * (never send secrets in it).
   */
  export interface DecisionDeny {
    tag: 'deny',
    val: string,
  }
  /**
   * Not mine to decide: the next plugin in the chain is asked. When
   * every plugin abstains the login is denied.
   */
  export interface DecisionAbstain {
    tag: 'abstain',
  }
}
