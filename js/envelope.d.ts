/** An envelope that is not well-formed; `code` names the failed check (docs/envelope-v1.md). */
export declare class EnvelopeFormatError extends Error {
  readonly name: 'EnvelopeFormatError';
  readonly code:
    | 'TooLong' | 'MissingPrefix' | 'InvalidEncoding' | 'Truncated' | 'TrailingBytes'
    | 'UnsupportedVersion' | 'UnsupportedSuite' | 'InvalidKeyId' | 'UnknownKind' | 'InvalidContext'
    | 'InvalidHints' | 'HintsNotAllowed' | 'InvalidPoint' | 'InvalidCiphertextLength';
}

export type FieldKind =
  | 'pan' | 'cvc' | 'exp' | 'name' | 'email' | 'phone' | 'address' | 'postal-code'
  | 'birth-date' | 'national-id' | 'iban' | 'text';

export type CardBrand =
  | 'visa' | 'mastercard' | 'amex' | 'discover' | 'diners' | 'jcb' | 'unionpay' | 'maestro'
  | 'rupay' | 'mir' | 'elo' | 'verve' | 'troy';

/** The public header of an envelope; unauthenticated until the vault opens it. */
export interface EnvelopeHeader {
  version: 1;
  kid: string;
  kind: FieldKind;
  /** Seconds since the epoch, in the vault's clock. */
  createdAt: number;
  /** 32 lowercase hex characters. */
  envelopeId: string;
  context: { session: string | null; origin: string | null };
  /** `brand` is null also for a brand code this version does not know (a newer page's). */
  hints: { brand: CardBrand | null; bin: string | null; last4: string | null };
}

/** Parses an envelope's text form; throws EnvelopeFormatError. Needs no wasm. */
export declare function parseEnvelope(text: string): EnvelopeHeader;
/** Whether `text` starts with the envelope prefix `fse1.`. */
export declare function isEnvelope(text: unknown): text is string;
