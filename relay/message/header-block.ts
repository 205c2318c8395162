// A message's header block as its lines, for the few changes the relay makes (From, Reply-To, the
// headers it adds or removes, Received). It reads and writes exactly what mailsplit's Headers did (a
// differential test holds the two together), but that class rebuilt every line once any changed (a
// regex pass, a UTF-8 round trip and a Buffer each, then a concat of all of them), and every message
// changes (Received at least): it was the relay's largest cost of its own per message. Here a line is
// only touched when it holds a line break, and the block becomes bytes in one step.
//
// One reading differs from mailsplit's, for safety: mailsplit took a first line starting "From " or "POST "
// for an mbox separator or an HTTP request line, kept it apart and wrote it back on top. SMTP carries
// neither, and "From : name <address>" (a space before the colon, RFC 5322's obsolete syntax) is a From
// receivers read: set apart, it escaped the checks on the From a tenant may send as. Here every line is a
// header line.
import libmime from 'libmime';

interface Line {
  /** The name before the first colon, lowercased and trimmed. */
  readonly key: string;
  /** The whole line, folds included, one char per byte (latin1). */
  readonly text: string;
}

const FOLD = /\r\n|\r|\n/g;
const LEADING_BREAKS = /^[\r\n]+/;
/** What foldsOnly would change: a break at the start, or one that is not CRLF followed by a space or tab. */
const NOT_A_FOLD = /^[\r\n]|\r(?!\n[ \t])|(?<!\r)\n|\n(?![ \t])/;
/** A character past ASCII in any string (a value given to set(), not yet one char per byte). */
const BEYOND_ASCII_ANYWHERE = /[^\x00-\x7f]/;
// A byte past ASCII (one char per byte in a latin1 string): only then can the UTF-8 reading differ.
const BEYOND_ASCII = /[\x80-\xff]/;

const nameOf = (key: string) => key.toLowerCase().trim();

/** Bytes as a string of one char per byte: how every line is held, so the block is written back byte for byte. */
const latin1Of = (text: string) => (BEYOND_ASCII_ANYWHERE.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text);

/**
 * A line break followed by a space or tab is a fold and becomes CRLF; any other one would start a header
 * line of its own (or end the block), so it goes. A break at the start would close the block: it goes too.
 */
function foldsOnly(text: string): string {
  // Nearly every line: no break, or folded as it should be (the Received line, a folded From). Returned as
  // it is: the replace below calls back into JavaScript for every break, ~5 us a message.
  if (!NOT_A_FOLD.test(text)) return text;
  return text.replace(LEADING_BREAKS, '').replace(FOLD, (brk: string, at: number, whole: string) => {
    const next = whole.charCodeAt(at + brk.length);
    return brk !== '\r' && (next === 0x20 || next === 0x09) ? '\r\n' : '';
  });
}

function valueOf(line: Line): string {
  if (!BEYOND_ASCII.test(line.text)) {
    // One line of ASCII: what decodeHeader returns (the value after the first colon, trimmed; none when
    // nothing precedes the colon) without its two regular expressions.
    if (line.text.includes('\r') || line.text.includes('\n')) return libmime.decodeHeader(line.text).value.trim();
    const text = line.text.trim();
    const colon = text.indexOf(':');
    return colon > 0 ? text.slice(colon + 1).trim() : '';
  }
  const utf8 = Buffer.from(line.text, 'latin1').toString('utf8');
  return libmime.decodeHeader(utf8.includes('\uFFFD') ? line.text : utf8).value.trim();
}

const isFold = (line: string) => line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09;

export class HeaderBlock {
  readonly #lines: Line[];
  readonly #original: Buffer;
  /** Until something changes, the block is written back as it came, line ends and all. */
  #changed = false;

  private constructor(original: Buffer, lines: Line[]) {
    this.#original = original;
    this.#lines = lines;
  }

  static parse(header: Buffer): HeaderBlock {
    const raw = header.toString('latin1');
    let end = raw.length;
    // An index scan: a pattern anchored at the end retries from every CR of a long run of them.
    while (end > 0 && (raw.charCodeAt(end - 1) === 0x0a || raw.charCodeAt(end - 1) === 0x0d)) end--;
    const rawLines = raw.slice(0, end).split(/\r?\n/);
    let i = 1;
    let first = rawLines[0] ?? '';
    while (i < rawLines.length && isFold(rawLines[i] ?? '')) first += `\r\n${rawLines[i++]}`;
    const lines: { key: string; text: string }[] = [{ key: nameOf(first.substring(0, Math.max(0, first.indexOf(':')))), text: first }];
    // A line with no colon takes its name from the first continuation line that has one.
    let keyPending = false;
    for (; i < rawLines.length; i++) {
      const current = rawLines[i] ?? '';
      const last = lines.at(-1);
      if (isFold(current) && last) {
        if (keyPending) {
          const colon = current.indexOf(':');
          if (colon >= 0) {
            last.key = nameOf(`${last.text}\r\n${current.substring(0, colon)}`);
            keyPending = false;
          }
        }
        last.text += `\r\n${current}`;
      } else {
        const colon = current.indexOf(':');
        lines.push({ key: nameOf(current.substring(0, Math.max(0, colon))), text: current });
        keyPending = colon < 0;
      }
    }
    return new HeaderBlock(header, lines);
  }

  /** How many lines have this name. */
  count(name: string): number {
    const key = nameOf(name);
    let n = 0;
    for (const line of this.#lines) if (line.key === key) n++;
    return n;
  }

  /** The first value of this name, unfolded and trimmed, decoded as UTF-8 where it is; '' when there is none. */
  first(name: string): string {
    const key = nameOf(name);
    const line = this.#lines.find((l) => l.key === key);
    return line ? valueOf(line) : '';
  }

  /** Every value of this name, in order, each as first() reads it. */
  values(name: string): string[] {
    const key = nameOf(name);
    const out: string[] = [];
    for (const line of this.#lines) if (line.key === key) out.push(valueOf(line));
    return out;
  }

  /** Sets the header to one line with this value, where its first instance was, or at the top. */
  set(name: string, value: string): void {
    const key = nameOf(name);
    this.#changed = true;
    const at = this.#removeAll(key) ?? 0;
    // A value cannot add a line: its breaks go before folding puts the block's own in.
    this.#insert(key, libmime.foldLines(`${name}: ${latin1Of(value).replace(/[\r\n]/g, '')}`, 76, false), at);
  }

  remove(name: string): void {
    if (this.#removeAll(nameOf(name)) !== undefined) this.#changed = true;
  }

  /** Puts a line, already folded as it should be, at the top of the block. */
  prepend(name: string, line: string): void {
    this.#changed = true;
    this.#insert(nameOf(name), latin1Of(line), 0);
  }

  /** The block as bytes, ending in the blank line. */
  toBuffer(): Buffer {
    if (!this.#changed) return this.#original;
    let out = '';
    let any = false;
    for (const line of this.#lines) {
      const text = foldsOnly(line.text);
      if (text === '') continue;
      out += any ? `\r\n${text}` : text;
      any = true;
    }
    return Buffer.from(`${out}\r\n\r\n`, 'latin1');
  }

  /** Takes out every line of this name; returns where the first of them was, or undefined when there was none. */
  #removeAll(key: string): number | undefined {
    let first: number | undefined;
    for (let i = this.#lines.length - 1; i >= 0; i--) {
      if (this.#lines[i]?.key !== key) continue;
      this.#lines.splice(i, 1);
      first = i;
    }
    return first;
  }

  #insert(key: string, line: string, at: number): void {
    // Nothing in front may fold it into the line above or close the block.
    const text = foldsOnly(line.replace(/^[\r\n \t]+/, ''));
    if (text === '') return;
    this.#lines.splice(Math.max(0, Math.min(at, this.#lines.length)), 0, { key, text });
  }
}
