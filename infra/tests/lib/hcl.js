'use strict';
// A structural reader of HCL native syntax that keeps what the JSON form of @cdktf/hcl2json loses:
// line numbers, and whether `x { ... }` (a block) or `x = ...` (an argument) was written.
//
// It runs only on files that HashiCorp's parser (hcl2json) has already accepted, so it can be
// lenient: it splits a body into arguments and blocks and keeps each argument's expression text,
// without building expression trees. refs.js reads references out of that text.

class Source {
  constructor(file, text) {
    this.file = file;
    this.text = text;
    this.lineStarts = [0];
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.lineStarts.push(i + 1);
  }

  lineOf(offset) {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}

const IDENT_START = /[A-Za-z_]/;
const IDENT_CHAR = /[A-Za-z0-9_-]/;

// Skips a quoted template string starting at text[i] === '"'; returns the index after the quote.
function skipQuoted(text, i) {
  i++;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') { i += 2; continue; }
    if (c === '"') return i + 1;
    if ((c === '$' || c === '%') && text[i + 1] === '{') {
      if (text[i - 1] === c && text[i - 2] !== c) { i += 2; continue; } // $${ and %%{ are escapes
      i = skipInterpolation(text, i + 2);
      continue;
    }
    if (c === '\n') return i; // unterminated (the parser would have said so)
    i++;
  }
  return i;
}

// From just inside `${` or `%{`, skips to just after the matching `}`.
function skipInterpolation(text, i) {
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') { i = skipQuoted(text, i); continue; }
    if (c === '{' || c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === '}') {
      if (depth === 0) return i + 1;
      depth--;
    }
    i++;
  }
  return i;
}

// At text[i] === '<' of `<<EOT` or `<<-EOT`: returns the index after the terminator line, or -1.
function skipHeredoc(text, i) {
  const m = /^<<-?([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n/.exec(text.slice(i, i + 200));
  if (!m) return -1;
  const id = m[1];
  let j = i + m[0].length;
  while (j < text.length) {
    const nl = text.indexOf('\n', j);
    const line = text.slice(j, nl < 0 ? text.length : nl);
    if (line.trim() === id) return nl < 0 ? text.length : nl;
    if (nl < 0) return text.length;
    j = nl + 1;
  }
  return text.length;
}

function skipComment(text, i) {
  if (text[i] === '#' || (text[i] === '/' && text[i + 1] === '/')) {
    const nl = text.indexOf('\n', i);
    return nl < 0 ? text.length : nl;
  }
  if (text[i] === '/' && text[i + 1] === '*') {
    const end = text.indexOf('*/', i + 2);
    return end < 0 ? text.length : end + 2;
  }
  return -1;
}

// The end (exclusive) of the expression starting at i: a newline or a `}` at bracket depth 0.
function scanExpression(text, i) {
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') { i = skipQuoted(text, i); continue; }
    if (c === '<' && text[i + 1] === '<') {
      const j = skipHeredoc(text, i);
      if (j >= 0) { i = j; continue; }
    }
    const k = skipComment(text, i);
    if (k >= 0) {
      if (depth === 0) return i; // a trailing comment ends the expression
      i = k;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === '}') {
      if (depth === 0) return i;
      depth--;
    } else if (c === '\n' && depth === 0) return i;
    i++;
  }
  return i;
}

function skipTrivia(text, i) {
  for (;;) {
    while (i < text.length && /\s/.test(text[i])) i++;
    const k = skipComment(text, i);
    if (k < 0) return i;
    i = k;
  }
}

function readIdent(text, i) {
  if (!IDENT_START.test(text[i] || '')) return null;
  let j = i + 1;
  while (j < text.length && IDENT_CHAR.test(text[j])) j++;
  return { name: text.slice(i, j), end: j };
}

// Parses a body from i up to a closing `}` (or end of file); returns { items, end }.
function parseBody(src, i, nested) {
  const text = src.text;
  const items = [];
  for (;;) {
    i = skipTrivia(text, i);
    if (i >= text.length) return { items, end: i };
    if (text[i] === '}') {
      if (nested) return { items, end: i + 1 };
      throw new Error(`${src.file}:${src.lineOf(i)}: unexpected }`);
    }
    const id = readIdent(text, i);
    if (!id) throw new Error(`${src.file}:${src.lineOf(i)}: cannot read "${text.slice(i, i + 20)}"`);
    const start = i;
    let j = id.end;
    while (text[j] === ' ' || text[j] === '\t') j++;
    if (text[j] === '=' && text[j + 1] !== '=') {
      let e = j + 1;
      while (text[e] === ' ' || text[e] === '\t') e++;
      const end = scanExpression(text, e);
      items.push({
        kind: 'attr', name: id.name, line: src.lineOf(start), offset: start,
        exprOffset: e, expr: text.slice(e, end).trimEnd(), file: src.file,
      });
      i = end;
      continue;
    }
    const labels = [];
    for (;;) {
      while (text[j] === ' ' || text[j] === '\t') j++;
      if (text[j] === '"') {
        const k = skipQuoted(text, j);
        labels.push(text.slice(j + 1, k - 1));
        j = k;
      } else if (text[j] === '{') {
        break;
      } else {
        const l = readIdent(text, j);
        if (!l) throw new Error(`${src.file}:${src.lineOf(j)}: cannot read block header of ${id.name}`);
        labels.push(l.name);
        j = l.end;
      }
    }
    const body = parseBody(src, j + 1, true);
    items.push({
      kind: 'block', type: id.name, labels, line: src.lineOf(start), offset: start,
      body: body.items, endLine: src.lineOf(body.end - 1), file: src.file,
    });
    i = body.end;
  }
}

function parseFile(file, text) {
  const src = new Source(file, text);
  return { src, items: parseBody(src, 0, false).items };
}

// Helpers over parsed bodies.
const attrs = (body) => body.filter((x) => x.kind === 'attr');
const blocks = (body, type) => body.filter((x) => x.kind === 'block' && (!type || x.type === type));
const attr = (body, name) => body.find((x) => x.kind === 'attr' && x.name === name);

// The value of a literal expression (string without interpolation, number, bool, null), else undefined.
function literal(expr) {
  if (expr === undefined) return undefined;
  const e = expr.trim();
  if (e === 'true') return true;
  if (e === 'false') return false;
  if (e === 'null') return null;
  if (/^-?[0-9]+(\.[0-9]+)?$/.test(e)) return Number(e);
  if (/^"([^"\\$%]|\\.|\$(?!\{)|%(?!\{))*"$/.test(e)) return JSON.parse(e);
  return undefined;
}

module.exports = {
  Source, parseFile, attrs, blocks, attr, literal,
  skipQuoted, skipInterpolation, skipHeredoc, skipComment, scanExpression,
};
