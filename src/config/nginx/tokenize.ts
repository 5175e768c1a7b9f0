/**
 * nginx configuration syntax, first step: words, quoted strings and the three
 * punctuation marks `;` `{` `}`, each with its line. `#` starts a comment
 * where a word could start; quotes keep spaces and `;{}`; a backslash escapes
 * the quote marks and itself, and stays before any other character, as in nginx.
 */

export interface Token {
  /** The word, unquoted; for punctuation, the mark itself. */
  text: string;
  kind: 'word' | 'quoted' | ';' | '{' | '}';
  line: number;
}

export class SyntaxProblem extends Error {
  constructor(message: string, readonly line: number) {
    super(message);
  }
}

const SPACE = /[ \t\r\n]/;

function readQuoted(src: string, start: number, line: number): { text: string; end: number; line: number } {
  const q = src[start]!;
  let out = '';
  let i = start + 1;
  for (; i < src.length && src[i] !== q; i++) {
    let c = src[i]!;
    if (c === '\\' && i + 1 < src.length) {
      const n = src[++i]!;
      c = n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n === q || n === '\\' ? n : `\\${n}`;
    }
    if (c === '\n') line++;
    out += c;
  }
  if (i >= src.length) throw new SyntaxProblem('unexpected end of file, unterminated quoted string', line);
  return { text: out, end: i + 1, line };
}

function readWord(src: string, start: number): { text: string; end: number } {
  let out = '';
  let i = start;
  for (; i < src.length; i++) {
    const c = src[i]!;
    if (SPACE.test(c) || c === ';' || c === '{' || c === '}') break;
    // `${name}` keeps its braces inside a word.
    if (c === '$' && src[i + 1] === '{') {
      const close = src.indexOf('}', i);
      if (close > 0) {
        out += src.slice(i, close + 1);
        i = close;
        continue;
      }
    }
    // As nginx: `\"`, `\'` and `\\` lose their backslash, `\t` `\r` `\n` are the characters,
    // any other pair stays as written (so regexes keep `\d`, `\.`).
    if (c === '\\' && i + 1 < src.length) {
      const n = src[++i]!;
      out += n === '"' || n === "'" || n === '\\' ? n : n === 't' ? '\t' : n === 'r' ? '\r' : n === 'n' ? '\n' : `\\${n}`;
      continue;
    }
    out += c;
  }
  return { text: out, end: i };
}

export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') line++;
    if (SPACE.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === ';' || c === '{' || c === '}') {
      out.push({ text: c, kind: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      const q = readQuoted(src, i, line);
      out.push({ text: q.text, kind: 'quoted', line });
      line = q.line;
      i = q.end;
    } else {
      const w = readWord(src, i);
      out.push({ text: w.text, kind: 'word', line });
      i = w.end;
    }
  }
  return out;
}
