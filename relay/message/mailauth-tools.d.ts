// The one member of mailauth's tools the signer's caller reads (the package ships no types for it).
declare module 'mailauth/lib/tools.js' {
  /** The header names mailauth signs by default, colon-separated. */
  export const defaultDKIMFieldNames: string;
}
