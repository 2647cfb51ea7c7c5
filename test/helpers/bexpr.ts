/**
 * The part of Consul's filter language (go-bexpr, https://developer.hashicorp.com/consul/api-docs/features/filtering)
 * the Consul double evaluates on `/v1/health/service/:name` entries:
 *
 * - matching operators: `==`, `!=`, `is empty`, `is not empty`, `"v" in S`, `"v" not in S`, `S contains "v"`,
 *   `S not contains "v"`, `S matches "re"`, `S not matches "re"`;
 * - `and`, `or`, `not` (usual precedence: not > and > or) and parentheses;
 * - selectors: `.`-separated names starting with a letter (`Service.Meta.version`), map keys as `["key"]`;
 * - values: double-quoted strings (with escapes), backtick raw strings, numbers, or bare words.
 *
 * Semantics, as bexpr's: a selector's first name must be a top-level field of the entry (`Node`, `Service`,
 * `Checks`), else the filter is invalid; a missing map key is an empty value (`==` false, `!=` true, `is empty`
 * true); `contains`/`in` test membership in a list, a key in a map, or a substring of a string; values compare to
 * numbers and booleans by their text. A selector that crosses a list (`Checks.Status`) matches when any element
 * does. Invalid expressions throw {@link FilterSyntaxError}; the double answers those with HTTP 400.
 */

export class FilterSyntaxError extends Error {}

type Token =
  | { readonly kind: 'word'; readonly text: string }
  | { readonly kind: 'string'; readonly text: string }
  | { readonly kind: 'op'; readonly text: '==' | '!=' | '(' | ')' };

type Node =
  | { readonly kind: 'and' | 'or'; readonly left: Node; readonly right: Node }
  | { readonly kind: 'not'; readonly inner: Node }
  | {
      readonly kind: 'match';
      readonly op: 'eq' | 'empty' | 'contains' | 'matches';
      readonly negate: boolean;
      readonly selector: readonly string[];
      readonly value: string;
    };

const TOP_LEVEL = new Set(['Node', 'Service', 'Checks']);
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'contains', 'matches', 'is', 'empty']);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: 'op', text: c });
      i++;
    } else if (c === '=' || c === '!') {
      if (text[i + 1] !== '=') throw new FilterSyntaxError(`unexpected "${c}" at ${i}`);
      tokens.push({ kind: 'op', text: c === '=' ? '==' : '!=' });
      i += 2;
    } else if (c === '"') {
      let out = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new FilterSyntaxError('unterminated string');
        const d = text[i] as string;
        if (d === '"') break;
        if (d === '\\') {
          const e = text[i + 1];
          out += e === 'n' ? '\n' : e === 't' ? '\t' : (e ?? '');
          i += 2;
        } else {
          out += d;
          i++;
        }
      }
      i++;
      tokens.push({ kind: 'string', text: out });
    } else if (c === '`') {
      const end = text.indexOf('`', i + 1);
      if (end < 0) throw new FilterSyntaxError('unterminated raw string');
      tokens.push({ kind: 'string', text: text.slice(i + 1, end) });
      i = end + 1;
    } else {
      // A selector (with ["key"] parts) or a bare value.
      let j = i;
      while (j < text.length && !/[\s()=!]/.test(text[j] as string)) {
        if (text[j] === '[') {
          const close = text.indexOf(']', j);
          if (close < 0) throw new FilterSyntaxError('unterminated [ in selector');
          j = close + 1;
        } else {
          j++;
        }
      }
      tokens.push({ kind: 'word', text: text.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

function parseSelector(text: string): string[] {
  const parts: string[] = [];
  const re = /^(?:\.?([A-Za-z][A-Za-z0-9_]*)|\["((?:[^"\\]|\\.)*)"\])/;
  let rest = text;
  while (rest.length > 0) {
    const m = re.exec(rest);
    if (m === null || (parts.length === 0 && rest.startsWith('.'))) {
      throw new FilterSyntaxError(`invalid selector ${JSON.stringify(text)}`);
    }
    parts.push(m[1] ?? (m[2] as string));
    rest = rest.slice(m[0].length);
  }
  if (!TOP_LEVEL.has(parts[0] ?? '')) throw new FilterSyntaxError(`Selector ${JSON.stringify(text)} is not valid`);
  return parts;
}

class Parser {
  #at = 0;
  constructor(private readonly tokens: Token[]) {}

  parse(): Node {
    const node = this.#or();
    if (this.#at !== this.tokens.length) throw new FilterSyntaxError('unexpected input after the expression');
    return node;
  }

  #peek(): Token | undefined {
    return this.tokens[this.#at];
  }

  #word(text: string): boolean {
    const t = this.#peek();
    if (t?.kind === 'word' && t.text === text) {
      this.#at++;
      return true;
    }
    return false;
  }

  #or(): Node {
    let left = this.#and();
    while (this.#word('or')) left = { kind: 'or', left, right: this.#and() };
    return left;
  }

  #and(): Node {
    let left = this.#not();
    while (this.#word('and')) left = { kind: 'and', left, right: this.#not() };
    return left;
  }

  #not(): Node {
    if (this.#word('not')) return { kind: 'not', inner: this.#not() };
    const t = this.#peek();
    if (t?.kind === 'op' && t.text === '(') {
      this.#at++;
      const inner = this.#or();
      const close = this.#peek();
      if (close?.kind !== 'op' || close.text !== ')') throw new FilterSyntaxError('missing )');
      this.#at++;
      return inner;
    }
    return this.#match();
  }

  #value(): string {
    const t = this.#peek();
    if (t === undefined || t.kind === 'op' || (t.kind === 'word' && KEYWORDS.has(t.text))) {
      throw new FilterSyntaxError('expected a value');
    }
    this.#at++;
    return t.text;
  }

  #match(): Node {
    const first = this.#peek();
    if (first === undefined || first.kind === 'op') throw new FilterSyntaxError('expected an expression');
    this.#at++;
    // "<value> [not] in <selector>"
    const negIn = this.#word('not');
    if (this.#word('in')) {
      const sel = this.#peek();
      if (sel?.kind !== 'word') throw new FilterSyntaxError('expected a selector after in');
      this.#at++;
      return { kind: 'match', op: 'contains', negate: negIn, selector: parseSelector(sel.text), value: first.text };
    }
    if (first.kind !== 'word') throw new FilterSyntaxError('expected a selector');
    const selector = parseSelector(first.text);
    const t = this.#peek();
    if (t?.kind === 'op' && (t.text === '==' || t.text === '!=') && !negIn) {
      this.#at++;
      return { kind: 'match', op: 'eq', negate: t.text === '!=', selector, value: this.#value() };
    }
    if (!negIn && this.#word('is')) {
      const negate = this.#word('not');
      if (!this.#word('empty')) throw new FilterSyntaxError('expected empty after is');
      return { kind: 'match', op: 'empty', negate, selector, value: '' };
    }
    const negate = negIn || this.#word('not');
    if (this.#word('contains')) return { kind: 'match', op: 'contains', negate, selector, value: this.#value() };
    if (this.#word('matches')) {
      const value = this.#value();
      try {
        new RegExp(value);
      } catch {
        throw new FilterSyntaxError(`invalid regular expression ${JSON.stringify(value)}`);
      }
      return { kind: 'match', op: 'matches', negate, selector, value };
    }
    throw new FilterSyntaxError(`expected a matching operator after ${first.text}`);
  }
}

/** The values a selector reaches in `entry`: several when it crosses a list; none when a key is missing. */
function select(entry: unknown, path: readonly string[]): unknown[] {
  let current: unknown[] = [entry];
  for (const name of path) {
    const next: unknown[] = [];
    for (const v of current) {
      const items = Array.isArray(v) ? v : [v];
      for (const item of items) {
        if (item !== null && typeof item === 'object' && !Array.isArray(item) && name in item) {
          next.push((item as Record<string, unknown>)[name]);
        }
      }
    }
    current = next;
  }
  return current;
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v).length === 0;
  return false;
}

function test(node: Extract<Node, { kind: 'match' }>, v: unknown): boolean {
  switch (node.op) {
    case 'eq':
      return v !== null && typeof v !== 'object' && String(v) === node.value;
    case 'empty':
      return isEmpty(v);
    case 'contains':
      if (Array.isArray(v)) return v.some((x) => String(x) === node.value);
      if (typeof v === 'string') return v.includes(node.value);
      if (v !== null && typeof v === 'object') return node.value in v;
      return false;
    case 'matches':
      return typeof v === 'string' && new RegExp(node.value).test(v);
  }
}

function evaluate(node: Node, entry: unknown): boolean {
  switch (node.kind) {
    case 'and':
      return evaluate(node.left, entry) && evaluate(node.right, entry);
    case 'or':
      return evaluate(node.left, entry) || evaluate(node.right, entry);
    case 'not':
      return !evaluate(node.inner, entry);
    case 'match': {
      const values = select(entry, node.selector);
      // A missing value is empty: it equals nothing and contains nothing.
      const positive = values.length === 0 ? node.op === 'empty' : values.some((v) => test(node, v));
      return node.negate ? !positive : positive;
    }
  }
}

/** Compiles a filter expression; throws {@link FilterSyntaxError} when it is invalid. */
export function compileFilter(text: string): (entry: unknown) => boolean {
  const tokens = tokenize(text);
  if (tokens.length === 0) return () => true;
  const tree = new Parser(tokens).parse();
  return (entry) => evaluate(tree, entry);
}
