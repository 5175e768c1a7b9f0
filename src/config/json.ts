/**
 * The JSON configuration file: parsed strictly (JSON.parse), with the line of
 * every field path kept (from jsonc-parser's tree) so problems found later say
 * where they were written. A syntax error gives its line, not a byte offset.
 */
import { parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import type { ConfigIssue } from './issues.js';

export interface LoadedConfig {
  value: Record<string, unknown>;
  where: Map<string, { file: string; line: number }>;
}

export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function walk(n: Node, path: string, file: string, text: string, out: LoadedConfig['where']): void {
  out.set(path, { file, line: lineAt(text, n.offset) });
  if (n.type === 'object') {
    for (const p of n.children ?? []) {
      const [k, v] = p.children ?? [];
      if (k === undefined || v === undefined) continue;
      const key = String(k.value);
      const sub = path === '' ? key : `${path}.${key}`;
      walk(v, sub, file, text, out);
      out.set(sub, { file, line: lineAt(text, k.offset) });
    }
  } else if (n.type === 'array') {
    (n.children ?? []).forEach((c, i) => walk(c, `${path}[${i}]`, file, text, out));
  }
}

/** Parse a JSON config's text; a problem comes back as an issue with file:line. */
export function parseJsonConfig(text: string, file: string): LoadedConfig | ConfigIssue {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  if (errors.length > 0 || tree === undefined) {
    const e = errors[0];
    const line = lineAt(text, e?.offset ?? text.length);
    return { field: '', severity: 'error', file, line, message: `not valid JSON: ${e !== undefined ? printParseErrorCode(e.error) : 'empty'}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // jsonc-parser accepts a few things JSON.parse does not (e.g. control characters in strings).
    return { field: '', severity: 'error', file, line: 1, message: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { field: '', severity: 'error', file, line: 1, message: `not valid JSON: the top level must be an object` };
  }
  const where: LoadedConfig['where'] = new Map();
  walk(tree, '', file, text, where);
  return { value: value as Record<string, unknown>, where };
}
