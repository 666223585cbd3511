// Compiled, never run: tsc fails if wsroute/static/multiplex.d.ts (what users compile against)
// and wsroute/static/multiplex.js (what browsers run, typed by its JSDoc) disagree.
//
// "#implementation" is multiplex.js itself (tsconfig.json maps it); the ordinary import of
// multiplex.js resolves to the multiplex.d.ts beside it.
import type * as Impl from "#implementation";
import type * as Decl from "../../wsroute/static/multiplex.js";

type IsAny<T> = 0 extends 1 & T ? true : false;
/** Each of A and B can stand for the other (and `any` stands only for `any`). */
type Same<A, B> =
  IsAny<A> extends true
    ? IsAny<B>
    : IsAny<B> extends true
      ? false
      : [A] extends [B]
        ? [B] extends [A]
          ? true
          : false
        : false;
/** `Same`, and the same property names: an optional property on one side only is a mismatch. */
type SameShape<A, B> = Same<A, B> extends true ? Same<keyof A, keyof B> : false;
/** Compiles only for `true`. */
type Assert<T extends true> = T;
/** Compiles only for `never`; otherwise the error names what is left. */
type NoneOf<T extends never> = T;
/** The members a user may touch: underscored ones are the implementation's own. */
type PublicKeys<T> = Exclude<keyof T, `_${string}`>;

type ImplModule = typeof Impl;
type DeclModule = typeof Decl;
type Classes = "MultiplexWebSocket" | "MultiplexSocket" | "ProtocolError";

// ---- exported values: the same names, and the implementation's fit the declared types.

export type UndeclaredExports = NoneOf<Exclude<keyof ImplModule, keyof DeclModule>>;
export type UnimplementedExports = NoneOf<Exclude<keyof DeclModule, keyof ImplModule>>;

declare const implementation: ImplModule;
declare const declaration: DeclModule;
// Every declared value (constants, functions, classes with their statics and constructors)
// has a compatible implementation...
export const implementationFitsDeclaration: DeclModule = implementation;
// ...and the declared types of constants and functions are exactly as wide (a declaration may
// not promise less than the code does, nor accept less than the code handles).
export const declarationFitsImplementation: Omit<ImplModule, Classes> = declaration;

/**
 * Functions whose parameter lists differ in length: TypeScript lets a function of fewer
 * parameters stand for one of more, so the assignments above do not catch a declared
 * parameter the code ignores.
 */
type ArityMismatches<I, D> = {
  [K in keyof D & keyof I]: I[K] extends (...args: infer P) => unknown
    ? D[K] extends (...args: infer Q) => unknown
      ? Same<P["length"], Q["length"]> extends true
        ? never
        : K
      : K
    : never;
}[keyof D & keyof I];
/** The constructors' parameter lists, likewise. */
type ConstructorArityMismatches = {
  [K in Classes]: Same<
    ConstructorParameters<ImplModule[K]>["length"],
    ConstructorParameters<DeclModule[K]>["length"]
  > extends true
    ? never
    : K;
}[Classes];

export type FunctionArityMismatches = NoneOf<ArityMismatches<ImplModule, DeclModule>>;
export type ClassArityMismatches = NoneOf<ConstructorArityMismatches>;

// ---- classes: the same public members on instances and on the class.

type ImplSocket = InstanceType<ImplModule["MultiplexSocket"]>;
type DeclSocket = InstanceType<DeclModule["MultiplexSocket"]>;
type ImplTopic = InstanceType<ImplModule["MultiplexWebSocket"]>;
type DeclTopic = InstanceType<DeclModule["MultiplexWebSocket"]>;
type ImplError = InstanceType<ImplModule["ProtocolError"]>;
type DeclError = InstanceType<DeclModule["ProtocolError"]>;

export type UndeclaredSocketMembers = NoneOf<Exclude<PublicKeys<ImplSocket>, keyof DeclSocket>>;
export type UndeclaredTopicMembers = NoneOf<Exclude<PublicKeys<ImplTopic>, keyof DeclTopic>>;
export type UndeclaredErrorMembers = NoneOf<Exclude<PublicKeys<ImplError>, keyof DeclError>>;
export type UndeclaredSocketStatics = NoneOf<
  Exclude<PublicKeys<ImplModule["MultiplexSocket"]>, keyof DeclModule["MultiplexSocket"]>
>;
export type UndeclaredTopicStatics = NoneOf<
  Exclude<PublicKeys<ImplModule["MultiplexWebSocket"]>, keyof DeclModule["MultiplexWebSocket"]>
>;

/** An object as a user sees it (e.g. a property holding a MultiplexSocket). */
type Surface<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends object
    ? Pick<T, PublicKeys<T>>
    : T;
/** Properties (not methods) whose types differ either way. */
type PropertyMismatches<I, D> = {
  [K in keyof D & keyof I]: D[K] extends (...args: never[]) => unknown
    ? never
    : Same<Surface<I[K]>, Surface<D[K]>> extends true
      ? never
      : K;
}[keyof D & keyof I];

// addEventListener and removeEventListener are left out: their declarations add overloads
// typed by event name to EventTarget's.
type Listeners = "addEventListener" | "removeEventListener";
type SocketMethods = Omit<DeclSocket, Listeners>;
type TopicMethods = Omit<DeclTopic, Listeners>;
export type SocketArityMismatches = NoneOf<ArityMismatches<ImplSocket, SocketMethods>>;
export type TopicArityMismatches = NoneOf<ArityMismatches<ImplTopic, TopicMethods>>;

export type SocketPropertyMismatches = NoneOf<PropertyMismatches<ImplSocket, DeclSocket>>;
export type TopicPropertyMismatches = NoneOf<PropertyMismatches<ImplTopic, DeclTopic>>;
export type ErrorPropertyMismatches = NoneOf<PropertyMismatches<ImplError, DeclError>>;

// ---- exported types: the implementation's JSDoc typedefs match the declared ones.

export type Types = [
  Assert<SameShape<Impl.DataFrame, Decl.DataFrame>>,
  Assert<SameShape<Impl.SubscribeFrame, Decl.SubscribeFrame>>,
  Assert<SameShape<Impl.UnsubscribeFrame, Decl.UnsubscribeFrame>>,
  Assert<SameShape<Impl.OkFrame, Decl.OkFrame>>,
  Assert<SameShape<Impl.ErrFrame, Decl.ErrFrame>>,
  Assert<SameShape<Impl.InvalidFrame, Decl.InvalidFrame>>,
  Assert<SameShape<Impl.ServerUnsubscribeFrame, Decl.ServerUnsubscribeFrame>>,
  Assert<SameShape<Impl.ClientFrame, Decl.ClientFrame>>,
  Assert<SameShape<Impl.ServerFrame, Decl.ServerFrame>>,
  Assert<SameShape<Impl.MultiplexOptions, Decl.MultiplexOptions>>,
  Assert<SameShape<Impl.MultiplexSocketState, Decl.MultiplexSocketState>>,
  Assert<SameShape<Impl.MultiplexStateEvent, Decl.MultiplexStateEvent>>,
  Assert<SameShape<Impl.MultiplexSubscribedEvent, Decl.MultiplexSubscribedEvent>>,
  Assert<SameShape<Impl.StreamPosition, Decl.StreamPosition>>,
  Assert<Same<ReturnType<ImplModule["parseSince"]>, Decl.StreamPosition>>,
  // What the parsers return is what the declared frame types describe.
  Assert<Same<ReturnType<ImplModule["parseServerFrame"]>, Decl.ServerFrame>>,
  Assert<Same<ReturnType<ImplModule["parseClientFrame"]>, Decl.ClientFrame>>,
  // The state a socket reports is one the declared type names.
  Assert<Same<ImplSocket["state"], Decl.MultiplexSocketState>>,
  // A topic's position, and what its `subscribed` listeners receive.
  Assert<Same<ImplTopic["position"], Decl.StreamPosition | null>>,
  Assert<Same<Parameters<NonNullable<ImplTopic["onsubscribed"]>>[0], Decl.MultiplexSubscribedEvent>>,
  Assert<Same<Decl.MultiplexWebSocketEventMap["subscribed"], Decl.MultiplexSubscribedEvent>>,
  // Presence: the list, this client's id, and what `presence` listeners receive.
  Assert<SameShape<Impl.PresenceChange, Decl.PresenceChange>>,
  Assert<SameShape<Impl.PresenceClient, Decl.PresenceClient>>,
  Assert<SameShape<Impl.PresenceEntry, Decl.PresenceEntry>>,
  Assert<SameShape<Impl.MultiplexPresenceEvent, Decl.MultiplexPresenceEvent>>,
  Assert<Same<ImplTopic["presence"], readonly Decl.PresenceEntry[]>>,
  Assert<Same<ImplTopic["clientId"], string | null>>,
  Assert<Same<Parameters<NonNullable<ImplTopic["onpresence"]>>[0], Decl.MultiplexPresenceEvent>>,
  Assert<Same<Decl.MultiplexWebSocketEventMap["presence"], Decl.MultiplexPresenceEvent>>,
  Assert<Same<ImplModule["PRESENCE"], "presence">>,
];

// ---- the event map types listeners by name, as users write them.

declare const topic: DeclTopic;
topic.addEventListener("subscribed", (event) => {
  const flags: [boolean, boolean] = [event.wasRecovering, event.recovered];
  return flags;
});
topic.onsubscribed = function (event) {
  const position: Decl.StreamPosition | null = this.position;
  return event.recovered ? position : null;
};
topic.addEventListener("presence", (event) => {
  const changes: readonly Decl.PresenceChange[] = [...event.joins, ...event.leaves];
  return changes.map(({ clientId, user, info }) => [clientId, user, info]);
});
topic.onpresence = function (event) {
  const me: string | null = this.clientId;
  const users: (string | null)[] = this.presence.map((entry) => entry.user);
  const others = this.presence.flatMap((entry) => entry.clients).filter((client) => client.clientId !== me);
  return [users, others, event.joins.length];
};
