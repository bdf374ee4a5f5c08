import type { CardBrand, FieldKind } from './envelope.js';
export type { CardBrand, EnvelopeHeader, FieldKind } from './envelope.js';
export { EnvelopeFormatError, isEnvelope, parseEnvelope } from './envelope.js';

/** An error from fieldseal with a stable machine-readable code (`card_luhn_mismatch`, `seal_context_used`, `keyset_expired` ...). */
export declare class FieldsealError extends Error {
  readonly name: 'FieldsealError';
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions);
}

/** A key set as published by the vault's `GET /v1/keys`. */
export interface KeySet {
  keys: Array<Record<string, unknown>>;
  server_time: number;
}

/** Public, authenticated context sealed into every envelope. */
export interface SealContext {
  /** The merchant's checkout session id (visible ASCII, at most 128 bytes). */
  session?: string | null;
  /** The page origin; defaults to `location.origin` on http(s) pages. `null` leaves it out. */
  origin?: string | null;
}

export interface LoadOptions {
  /**
   * A key-set URL (https; http only on localhost, 127.x or [::1], or `*.localhost` in a browser, else
   * `keyset_insecure_url`; a redirect is not followed: `keyset_fetch`), or the key set itself
   * (object or JSON text).
   */
  keys: string | KeySet;
  /** Where the wasm is: a URL, a Response, bytes or a compiled module. Default: next to this module. */
  wasm?: string | URL | Request | Response | BufferSource | WebAssembly.Module;
  /** How many sealing contexts to keep prepared: 0 to 64 (default 4; 0 prepares at seal time). */
  poolSize?: number;
  /** Context sealed into every envelope unless a seal gives its own. */
  context?: SealContext;
  /** The fetch used for a key-set URL (default: global fetch). */
  fetch?: typeof fetch;
  /**
   * With a key-set URL: fetch the key set again every this many seconds (default 3600; 0: never),
   * so a long-lived page picks up rotated keys and a fresh clock offset.
   */
  refreshKeys?: number;
  /**
   * RFC 7638 JWK thumbprints (SHA-256, base64url, 43 characters) of the vault keys this page
   * trusts, as `fieldseal-vault keys pins` prints them. Only pinned keys are sealed to. A key set
   * (fetched, refreshed or inline) is checked whole first, as without pins (`keyset_malformed`
   * ...); then one with no pinned key is refused with `keyset_unpinned`, and one whose pinned
   * keys are none valid now (only the next key pinned, before its `nbf`) with
   * `keyset_no_usable_key`. The thumbprints need WebCrypto: without it (a page outside a secure
   * context) `load()` rejects with `insecure_context`.
   */
  pins?: string[];
}

export interface SealOptions {
  kind: FieldKind;
  context?: SealContext;
}

export type Validation<T = {}> =
  | ({ valid: true } & T)
  | { valid: false; code: string; message: string };

export interface CardHelpers {
  /** The brand of a number or of its first digits, once only one brand is possible. */
  brand(number: string): CardBrand | null;
  /** Whether the digits pass the Luhn check. */
  luhn(digits: string): boolean;
  /** 4 for amex, 3 for other brands, null when unknown. */
  cvcLength(brand: CardBrand | null): number | null;
  /** Formats a card number as typed; `caret` is the caret index in `input`. */
  format(input: string, caret?: number): { text: string; caret: number; brand: CardBrand | null };
  validatePan(input: string): Validation<{ brand: CardBrand | null; bin: string; last4: string }>;
  validateCvc(cvc: string, brand?: CardBrand | null): Validation;
  /** Checked against the vault's clock. */
  validateExpiry(input: string): Validation<{ month: number; year: number }>;
}

export type PiiKind = 'card_number' | 'email' | 'phone' | 'us_ssn' | 'iban';
export type Sensitivity = 'none' | 'personal' | 'payment_card';

export interface ProtectOptions {
  /**
   * A card number in any other field: block the submit (default), seal it, or do nothing. `block`
   * seals instead a field the shopper cannot see or change (hidden, read-only, not rendered). A
   * hidden input named like a card number field holding one is sealed in every mode.
   */
  strayPan?: 'block' | 'seal' | 'off';
  /** As-you-type card number formatting (default true). */
  format?: boolean;
  /** Context sealed into the form's envelopes. */
  context?: SealContext;
  /**
   * Log each input of the page that looks like card or personal data but is not protected (see
   * `sealer.scan()`) once to the console: its kind, tag, name and id, and what gave it away; never
   * its value.
   */
  warnUnprotected?: boolean;
  /**
   * Messages by code, replacing the built-in English ones (`required`, `email_invalid`,
   * `phone_invalid`, `stray_card_number`, `unavailable`: the key set or the wasm failed to load).
   */
  messages?: Record<string, string>;
}

/** Events dispatched (bubbling) by a protected form. */
export interface FieldsealEventMap {
  'fieldseal:brand': CustomEvent<{ brand: CardBrand | null }>;
  'fieldseal:invalid': CustomEvent<{ kind: FieldKind | null; code: string; message: string; name: string | null }>;
  'fieldseal:valid': CustomEvent<{ kind: FieldKind | null }>;
  'fieldseal:sealed': CustomEvent<{ names: string[] }>;
  'fieldseal:blocked': CustomEvent<{ reason: 'invalid' | 'stray_card_number' }>;
  'fieldseal:error': CustomEvent<{ code: string; message: string }>;
}

export interface Protection {
  readonly fields: ReadonlyArray<{ name: string | null; kind: FieldKind; element: HTMLInputElement | HTMLTextAreaElement }>;
  /** Validates every protected field now, showing messages; true when all are valid. */
  validate(): boolean;
  /** Restores the form as it was. */
  detach(): void;
}

export declare class Sealer {
  private constructor();
  /** The key id envelopes are sealed to. */
  readonly keyId: string;
  /**
   * Fetches the key set again from the URL given to `load()`; drops prepared contexts when the
   * primary key changed. Keeps the current keys and rejects on failure. Resolves to the key id.
   */
  refreshKeys(): Promise<string>;
  /** Stops the periodic key refresh and the pool's refill. */
  close(): void;
  readonly stats: { pooled: number; poolSize: number; prepared: number; sealedFromPool: number; sealedCold: number };
  /** The vault's current time (seconds), from the key set's server_time. */
  serverNow(): number;
  /** Prepares contexts now, up to `count` (default: the pool size). */
  prepare(count?: number): void;
  /** Seals one value; synchronous. Throws FieldsealError. */
  seal(value: string, options: SealOptions): string;
  /** Seals `{ name: value }` (name = kind) or `{ name: { value, kind } }`; empty values are left out. */
  sealFields(fields: Record<string, string | null | undefined | { value: string; kind: FieldKind }>, options?: { context?: SealContext }): Record<string, string>;
  readonly card: CardHelpers;
  classify(value: string): { sensitivity: Sensitivity; kinds: PiiKind[] };
  containsCardNumber(text: string): boolean;
  fieldKindFor(piiKind: PiiKind): FieldKind | null;
  protect(form: HTMLFormElement, options?: ProtectOptions): Protection;
  /**
   * The inputs, text areas and selects under `root` (default: the document) that look like card
   * or personal data but are neither protected nor marked `data-seal="off"`.
   */
  scan(root?: ParentNode): UnprotectedField[];
}

/** An input `sealer.scan()` found: the kind it looks like and what gave it away. */
export interface UnprotectedField {
  element: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;
  kind: FieldKind;
  /** `value`: a sample of the value classified as card or personal data (not in the result). */
  reason: 'autocomplete' | 'type' | 'name' | 'id' | 'label' | 'placeholder' | 'value';
}

/**
 * Protects a form from the start: with the promise `load()` returns, a submit before it resolves
 * waits and is then checked and sealed; if it rejects, the form stays closed, shows the
 * `unavailable` message and dispatches `fieldseal:error`. With a Sealer, as `sealer.protect()`.
 */
export declare function protect(form: HTMLFormElement, sealer: Sealer | Promise<Sealer>, options?: ProtectOptions): Protection;

/** Fetches (or takes) the key set, instantiates the wasm, and returns a Sealer. */
export declare function load(options: LoadOptions): Promise<Sealer>;
