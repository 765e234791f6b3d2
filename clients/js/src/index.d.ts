// Types of mqim-client (src/index.js). See docs/clients.md.

export declare const Codes: readonly string[];

/** An error with the contract's code ("not_member", "invalid", ...), or "timeout" / "closed" from the library. */
export declare class MqimError extends Error {
  constructor(code: string, message?: string, extra?: { status?: number; retryAfter?: number });
  code: string;
  /** The HTTP status, for an error that came over HTTP. */
  status?: number;
  /** Seconds, with "rate_limited". */
  retryAfter?: number;
}

/** The conversation id of the 1:1 conversation of a and b: "d:{a}:{b}" with a <= b. */
export declare function directConv(a: string, b: string): string;
/** The payload of a JWT (not verified). */
export declare function decodeToken(token: string): { sub?: string; iat?: number; exp?: number };
/** POST /v1/login. */
export declare function login(httpUrl: string, userId: string, password: string): Promise<TokenAnswer>;

export interface TokenAnswer { token: string; expires_at: number; server_time: number }

/** A stored message, as the `msg` event and the history carry it. */
export interface Message {
  kind?: "msg";
  id: string;
  conv: string;
  seq: number;
  from: string;
  to: string;
  type: "text" | "image" | "audio" | "video" | "file" | "location" | "card" | "custom" | "system" | "recall" | "edit" | string;
  body: any;
  cid?: string;
  ts: number;
  reply_to?: string | null;
  mentions?: string[];
  ext?: any;
  recalled?: boolean;
  edited_at?: number;
}

export interface Conversation {
  id: string;
  kind: "direct" | "group";
  peer?: string;
  group?: string;
  last_seq: number;
  read_seq: number;
  min_seq: number;
  unread: number;
  last_message: Message | null;
  pinned: boolean;
  muted: boolean;
  hidden: boolean;
  member: boolean;
  updated_at: number;
  /** How far the peer has read (1:1), from read receipts seen by this client. */
  peer_read_seq: number;
}

export interface ReadEvent { kind: "read"; conv: string; user: string; seq: number }
export interface TypingEvent { kind: "typing"; conv: string; user: string }
export interface RecallEvent { kind: "recall"; conv: string; id: string; by: string; ts: number; seq: number }
export interface EditEvent { kind: "edit"; conv: string; id: string; by: string; body: any; ts: number; seq: number }
export interface ConvEvent { kind: "conv"; conv: string; pinned?: boolean; muted?: boolean; hidden?: boolean; read_seq?: number }
export interface GroupEvent { kind: "group"; group: string; event: string; user?: string; by?: string; data?: any }
export interface FriendEvent { kind: "friend"; event: "request" | "accepted" | "rejected" | "removed"; user: string; message?: string }
export interface SyncEvent { reason: string; conv?: string }
export interface Presence { online: boolean; devices: number; last_seen: number }

export interface EventMap {
  message: Message;
  read: ReadEvent;
  typing: TypingEvent;
  recall: RecallEvent;
  edit: EditEvent;
  conv: ConvEvent;
  group: GroupEvent;
  friend: FriendEvent;
  sync: SyncEvent;
  conversations: Conversation[];
  status: { connected: boolean };
  token: { expires_at: number };
  presence: Record<string, Presence>;
  error: MqimError | Error;
}

export interface ClientOptions {
  /** The MQTT WebSocket URL, e.g. ws://localhost:8083/ */
  wsUrl: string;
  userId: string;
  /** The user's access token. */
  token: string;
  /** Default: "web-" + random. The MQTT client id is `${userId}/${deviceId}`. */
  deviceId?: string;
  /** The HTTP API base, e.g. http://localhost:8080. Without it the store is read with requests over im/rpc. */
  httpUrl?: string;
  /** 5 (MQTT 5, the default) or 4 (MQTT 3.1.1). */
  protocolVersion?: 5 | 4;
  /** The app's own token renewal, used instead of POST /v1/token or the token request. */
  renewToken?: () => Promise<string | { token: string }>;
  /** Milliseconds before a send or request fails with "timeout" (default 30000). */
  sendTimeout?: number;
  /** First reconnect delay in ms (default 500, doubling up to 10 s). */
  reconnectDelay?: number;
  /** The mqtt.js module to use instead of the imported one. */
  mqtt?: any;
}

export type Target = string | { to: string } | { group: string };
export type Outgoing = string | { type?: string; body: any; reply_to?: string; mentions?: string[]; ext?: any; cid?: string };

export declare class MqimClient {
  constructor(opts: ClientOptions);
  readonly userId: string;
  readonly deviceId: string;
  readonly clientId: string;
  readonly token: string;
  readonly connected: boolean;
  readonly conversations: Map<string, Conversation>;

  on<K extends keyof EventMap>(name: K, fn: (ev: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(name: K, fn: (ev: EventMap[K]) => void): void;

  connect(): Promise<void>;
  disconnect(): Promise<void>;
  /** Test hook: breaks the socket as a network loss would. */
  dropConnection(): void;
  /** Test hook: drops the next n incoming events. */
  dropIncoming(n: number): void;
  refreshToken(): Promise<void>;
  sync(reason?: string): Promise<void>;
  request(method: string, params?: object): Promise<any>;

  send(target: Target, msg: Outgoing): Promise<{ id: string; seq: number; message: Message }>;
  typing(conv: string): void;
  markRead(conv: string, seq?: number): Promise<void>;
  recall(id: string, conv?: string): Promise<any>;
  edit(id: string, body: string | object, conv?: string): Promise<any>;
  messages(conv: string, o?: { afterSeq?: number; beforeSeq?: number; limit?: number }): Promise<Message[]>;
  conversation(conv: string): Conversation;
  list(): Conversation[];
  totalUnread(): number;
  updateConversation(conv: string, set: { pinned?: boolean; muted?: boolean; hidden?: boolean }): Promise<any>;

  user(uid: string): Promise<any>;
  presence(uids: string[]): Promise<Record<string, Presence>>;
  watchPresence(uids: string[], intervalMs?: number): () => void;
  group(gid: string): Promise<any>;
  members(gid: string): Promise<any[]>;
  createGroup(g: { id?: string; name: string; avatar?: string; members?: string[]; join_policy?: "open" | "approval" | "invite"; ext?: any }): Promise<any>;
  updateGroup(gid: string, set: object): Promise<any>;
  addMembers(gid: string, uids: string[]): Promise<any>;
  removeMember(gid: string, uid: string): Promise<any>;
  leaveGroup(gid: string): Promise<any>;
  joinGroup(gid: string): Promise<any>;
  dissolveGroup(gid: string): Promise<any>;
  requestFriend(to: string, message?: string): Promise<any>;
  answerFriend(from: string, accept: boolean): Promise<any>;
  friendRequests(): Promise<any[]>;
  friends(): Promise<any[]>;
  unfriend(uid: string): Promise<any>;
  block(uid: string): Promise<any>;
  unblock(uid: string): Promise<any>;
}
