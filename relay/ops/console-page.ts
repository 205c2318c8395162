// The mail console's page: one HTML file, its script and its style sheet, served by the ops listener as
// they are in relay/ops/console/ (copied beside the built code by bin/build.js). Nothing is loaded from
// outside the relay, and the page holds no data: it asks the API with the token a person types in, kept
// for the browser tab only (sessionStorage). The policy headers forbid everything else.
import fs from 'node:fs';
import type { OpsAnswer } from './http.js';

const FILES = {
  page: { file: 'index.html', type: 'text/html; charset=utf-8' },
  'console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  'console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
} as const;

const POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const read = new Map<string, string>();

export function consolePage(name: string): OpsAnswer {
  const asset = FILES[name as keyof typeof FILES];
  if (!asset) return { status: 404, body: { error: 'not found' } };
  let text = read.get(asset.file);
  if (text === undefined) {
    text = fs.readFileSync(new URL(`./console/${asset.file}`, import.meta.url), 'utf8');
    read.set(asset.file, text);
  }
  return { status: 200, text, contentType: asset.type, headers: { 'content-security-policy': POLICY, 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' } };
}
