// Envelope addresses are handed to nodemailer, which would re-parse anything odd into other addresses
// (a comma makes two). Only plain mailbox@domain forms go through; routing tricks are refused.
const LOCAL = /^[^\s@<>()[\]\\,;:"%!\u0000-\u001f\u007f]{1,64}$/u;
const DOMAIN = /^(?=.{1,255}$)[^\s@<>()[\]\\,;:"%!\u0000-\u001f\u007f._-][^\s@<>()[\]\\,;:"%!\u0000-\u001f\u007f]*$/u;

export function isAcceptableAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  return LOCAL.test(local) && DOMAIN.test(domain) && !domain.includes('..') && !domain.endsWith('.');
}
