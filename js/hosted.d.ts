/** Hosted fields: the vault's card field frames in the merchant's page (docs/hosted-fields.md). */

/** An error from fieldseal/hosted, with a stable machine-readable code. */
export declare class FieldsealError extends Error {
  readonly name: 'FieldsealError';
  /** `invalid_option`, `appearance_invalid`, `invalid`, `frame_unavailable`, `keyset_fetch` ... */
  readonly code: string;
  /** With `invalid`: the fields that failed and why. */
  readonly fields?: Partial<Record<HostedField, FieldError>>;
}

export type HostedField = 'pan' | 'exp' | 'cvc' | 'name';
export interface FieldError { code: string; message: string }

/**
 * Checked property by property, here and again inside the frame; anything else is refused with
 * `appearance_invalid`. Lengths in px, em or rem; colours as #hex, rgb()/rgba() or a few names.
 */
export interface Appearance {
  /** A generic family or a font of the safe list (system-ui, Arial, Georgia, Roboto ...). */
  fontFamily?: string;
  /** A `.woff2` file self-hosted on the vault (`[fields] fonts_dir`), used first. */
  font?: { family: string; file: string; weight?: string | number };
  fontSize?: string; // 8px to 32px
  fontWeight?: '300' | '400' | '500' | '600' | '700' | 'normal' | 'bold' | number;
  lineHeight?: string | number; // 1 to 3, or a length up to 64px
  letterSpacing?: string; // up to 4px
  color?: string;
  backgroundColor?: string;
  placeholderColor?: string;
  borderColor?: string;
  borderWidth?: string; // up to 4px
  borderRadius?: string; // up to 24px
  padding?: string; // 1 to 4 lengths, each up to 32px
  focusBorderColor?: string;
  focusRingColor?: string;
  invalidColor?: string;
  invalidBorderColor?: string;
}

export interface MountOptions {
  /** The vault's URL (its origin serves the frames): https, or http on localhost only. */
  vault: string;
  /** The containers (elements or selectors) the frames go into: pan, exp and cvc; name optional. */
  fields: { pan: Element | string; exp: Element | string; cvc: Element | string; name?: Element | string };
  /** Accessible names; default: the text of a `<label for>` the container's id, else English. */
  labels?: Partial<Record<HostedField, string>>;
  placeholders?: Partial<Record<HostedField, string>>;
  appearance?: Appearance;
  /** The element (or selector) that shows and announces the first field's error (aria-live). */
  messages?: Element | string;
  /** Messages by error code, replacing the frames' English ones (and `unavailable`). */
  errorMessages?: Record<string, string>;
  /** Sealed into every envelope. */
  context?: { session?: string };
  /**
   * Milliseconds (default 15000) to wait for each frame to be ready (handshake, wasm, key set)
   * and for each frame's answer to `seal()`: then `frame_unavailable`.
   */
  timeout?: number;
}

/** Sent when it changes; as typed, by length only (docs/hosted-fields.md, "What the state says"). */
export interface FieldState { empty: boolean; complete: boolean; error: FieldError | null; brand?: string | null }

export interface HostedFieldsEventMap {
  ready: {};
  change: { field: HostedField } & FieldState;
  brand: { brand: string | null };
  focus: { field: HostedField };
  blur: { field: HostedField };
  invalid: { field: HostedField; code: string; message: string };
  valid: { field: HostedField };
  error: { field?: HostedField; code: string; message: string };
  sealed: { names: string[] };
  blocked: { code: string; fields: Partial<Record<HostedField, FieldError>> | null };
}

export declare class HostedFields extends EventTarget {
  private constructor();
  /** Resolves when every frame is interactive; rejects with the failure. */
  readonly ready: Promise<void>;
  readonly state: Partial<Record<HostedField, FieldState>>;
  on<K extends keyof HostedFieldsEventMap>(type: K, fn: (detail: HostedFieldsEventMap[K]) => void): () => void;
  /**
   * The envelopes of every field; rejects with FieldsealError `invalid` (see `fields`), or
   * `frame_unavailable` when a frame did not answer within `timeout` (it is replaced, empty).
   */
  seal(): Promise<{ pan: string; exp: string; cvc: string; name?: string }>;
  /** Seals on submit into hidden inputs (default names card_number, card_exp, card_cvc, card_name). */
  protect(form: HTMLFormElement, options?: { names?: Partial<Record<HostedField, string>> }): { detach(): void };
  focus(field?: HostedField): void;
  clear(): void;
  destroy(): void;
}

export declare function mountFields(options: MountOptions): HostedFields;
