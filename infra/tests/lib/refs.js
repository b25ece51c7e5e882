'use strict';
// Reads the references (traversals such as var.x, aws_vpc.this.id, module.m[0].out) out of an
// HCL expression's text, and out of template files (templatefile's .tftpl).
//
// Each reference is { root, parts, offset }: parts are the names after the root, with "[]" for an
// index ([0], [each.key]) and "*" for a splat. Names bound by for-expressions and by template
// %{ for } directives are left out, and so are function names and object keys.

const { skipHeredoc, skipComment } = require('./hcl');

const KEYWORDS = new Set(['true', 'false', 'null', 'for', 'in', 'if', 'else', 'endif', 'endfor']);
const IDENT_START = /[A-Za-z_]/;
const IDENT_CHAR = /[A-Za-z0-9_-]/;

function prevSignificant(text, i) {
  let j = i - 1;
  while (j >= 0 && /\s/.test(text[j])) j--;
  return j >= 0 ? text[j] : '';
}

function nextSignificantIndex(text, i) {
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n')) i++;
  return i;
}

class Scanner {
  constructor(text, baseOffset) {
    this.text = text;
    this.base = baseOffset || 0;
    this.refs = [];
  }

  inScope(scopes, name) {
    return scopes.some((s) => s.has(name));
  }

  // Scans text[i..end) as an expression; returns the index where it stopped (end, or the `}` that
  // closes an interpolation when stopAtBrace).
  expr(i, end, scopes, stopAtBrace) {
    const text = this.text;
    const frames = [];
    while (i < end) {
      const c = text[i];
      if (c === '"') { i = this.template(i + 1, end, scopes, '"'); continue; }
      if (c === '<' && text[i + 1] === '<') {
        const j = skipHeredoc(text, i);
        if (j >= 0) {
          const bodyStart = text.indexOf('\n', i) + 1;
          const lastNl = text.lastIndexOf('\n', j - 1);
          this.template(bodyStart, lastNl > bodyStart ? lastNl : bodyStart, scopes, null);
          i = j;
          continue;
        }
      }
      const k = skipComment(text, i);
      if (k >= 0) { i = k; continue; }
      if (c === '(' || c === '[' || c === '{') {
        const scope = new Set();
        frames.push(scope);
        scopes = [...scopes, scope];
        i++;
        // A for-expression: `[for a, b in ... :` or `{for k, v in ... :`
        const j = nextSignificantIndex(text, i);
        if ((c === '[' || c === '{') && /^for\b/.test(text.slice(j, j + 4))) {
          let p = j + 3;
          for (;;) {
            p = nextSignificantIndex(text, p);
            const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(p));
            if (!m || m[0] === 'in') break;
            scope.add(m[0]);
            p = nextSignificantIndex(text, p + m[0].length);
            if (text[p] === ',') p++;
          }
          i = p;
        }
        continue;
      }
      if (c === ')' || c === ']' || c === '}') {
        if (frames.length === 0) {
          if (c === '}' && stopAtBrace) return i;
          i++;
          continue;
        }
        frames.pop();
        scopes = scopes.slice(0, -1);
        i++;
        continue;
      }
      if (/[0-9]/.test(c)) {
        while (i < end && /[0-9.eE]/.test(text[i])) i++;
        continue;
      }
      if (IDENT_START.test(c) && !IDENT_CHAR.test(text[i - 1] || '') && prevSignificant(text, i) !== '.') {
        i = this.traversal(i, end, scopes);
        continue;
      }
      i++;
    }
    return i;
  }

  traversal(i, end, scopes) {
    const text = this.text;
    const start = i;
    let j = i;
    while (j < end && IDENT_CHAR.test(text[j])) j++;
    const root = text.slice(i, j);
    if (KEYWORDS.has(root)) return j;
    const after = nextSignificantIndex(text, j);
    if (text[after] === '(') return j; // function call (provider::ns::fn is not used here)
    if (text[after] === ':' && text[after + 1] === ':') return after + 2;
    if (text[after] === '=' && text[after + 1] !== '=' && text[after + 1] !== '>') return j; // object key
    const parts = [];
    for (;;) {
      if (text[j] === '.' && text[j + 1] === '*') { parts.push('*'); j += 2; continue; }
      if (text[j] === '.' && IDENT_START.test(text[j + 1] || '')) {
        let k = j + 1;
        while (k < end && IDENT_CHAR.test(text[k])) k++;
        parts.push(text.slice(j + 1, k));
        j = k;
        continue;
      }
      if (text[j] === '.' && /[0-9]/.test(text[j + 1] || '')) {
        let k = j + 1;
        while (k < end && /[0-9]/.test(text[k])) k++;
        parts.push('[]');
        j = k;
        continue;
      }
      if (text[j] === '[') {
        if (text[j + 1] === '*' && text[j + 2] === ']') { parts.push('*'); j += 3; continue; }
        // An index: its expression may hold references of its own.
        const after = this.matchBracket(j);
        this.expr(j + 1, after - 1, scopes, false);
        parts.push('[]');
        j = after;
        continue;
      }
      break;
    }
    if (!this.inScope(scopes, root)) this.refs.push({ root, parts, offset: this.base + start });
    return j;
  }

  // Index of the character after the `]` matching text[i] === '['.
  matchBracket(i) {
    const text = this.text;
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const c = text[j];
      if (c === '"') {
        // skip a string
        j++;
        while (j < text.length && text[j] !== '"') { if (text[j] === '\\') j++; j++; }
        continue;
      }
      if (c === '[' || c === '(' || c === '{') depth++;
      else if (c === ']' || c === ')' || c === '}') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return text.length;
  }

  // A template (quoted string body, heredoc body, or template file) from i; quote is '"' for a
  // quoted string (stop after the closing quote) or null (run to end). Handles ${ } and %{ }.
  template(i, end, scopes, quote) {
    const text = this.text;
    const stack = [];
    while (i < end) {
      const c = text[i];
      if (quote && c === '\\') { i += 2; continue; }
      if (quote && c === quote) return i + 1;
      if ((c === '$' || c === '%') && text[i + 1] === '{') {
        if (text[i + 2] === c) { i += 3; continue; }
        if (i > 0 && text[i - 1] === c) { i += 2; continue; } // $${ / %%{ escapes
        let p = i + 2;
        if (text[p] === '~') p++;
        if (c === '%') {
          const d = /^\s*(for|endfor|if|else|endif)\b/.exec(text.slice(p, p + 12));
          if (d && d[1] === 'for') {
            const scope = new Set();
            let q = p + d[0].length;
            for (;;) {
              q = nextSignificantIndex(text, q);
              const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(q));
              if (!m || m[0] === 'in') { q += m ? 2 : 0; break; }
              scope.add(m[0]);
              q = nextSignificantIndex(text, q + m[0].length);
              if (text[q] === ',') q++;
            }
            stack.push(scope);
            const stop = this.expr(q, end, scopes, true);
            scopes = [...scopes, scope];
            i = stop + 1;
            continue;
          }
          if (d && d[1] === 'endfor') {
            const s = stack.pop();
            if (s) scopes = scopes.filter((x) => x !== s);
            i = text.indexOf('}', p) + 1;
            continue;
          }
          if (d && (d[1] === 'else' || d[1] === 'endif')) {
            i = text.indexOf('}', p) + 1;
            continue;
          }
          if (d && d[1] === 'if') p += d[0].length;
        }
        const stop = this.expr(p, end, scopes, true);
        i = stop + 1;
        continue;
      }
      i++;
    }
    return i;
  }
}

function findRefs(exprText, baseOffset) {
  const s = new Scanner(exprText, baseOffset);
  s.expr(0, exprText.length, [], false);
  return s.refs;
}

function findTemplateRefs(templateText) {
  const s = new Scanner(templateText, 0);
  s.template(0, templateText.length, [], null);
  return s.refs;
}

// Function calls named in an expression (for templatefile/file checks): [{ name, argsOffset }].
function findCalls(exprText, name) {
  const out = [];
  const re = new RegExp(`\\b${name}\\s*\\(`, 'g');
  let m;
  while ((m = re.exec(exprText))) out.push({ offset: m.index, argsStart: m.index + m[0].length });
  return out;
}

// Splits the top-level, comma-separated arguments of a call whose text starts after `(`.
function splitArgs(text, i) {
  const args = [];
  let depth = 0;
  let start = i;
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') i++;
        else if (text[i] === '$' && text[i + 1] === '{') {
          let d = 0;
          for (i += 2; i < text.length; i++) {
            if (text[i] === '{') d++;
            else if (text[i] === '}') { if (d === 0) break; d--; }
          }
        }
        i++;
      }
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) { args.push(text.slice(start, i).trim()); return args; }
      depth--;
    } else if (c === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  return args;
}

// Top-level keys of an object constructor `{ a = 1, "b" = 2 }` (or null when not one).
function objectKeys(text) {
  const t = text.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return null;
  const keys = [];
  let depth = 0;
  let lineStart = true;
  for (let i = 1; i < t.length - 1; i++) {
    const c = t[i];
    if (c === '"' && depth === 0 && lineStart) {
      const j = t.indexOf('"', i + 1);
      const after = t.slice(j + 1).trimStart();
      if (after.startsWith('=') || after.startsWith(':')) keys.push(t.slice(i + 1, j));
      i = j;
      lineStart = false;
      continue;
    }
    if (c === '"') {
      i++;
      while (i < t.length && t[i] !== '"') { if (t[i] === '\\') i++; i++; }
      continue;
    }
    if (c === '(' || c === '[' || c === '{') { depth++; lineStart = false; continue; }
    if (c === ')' || c === ']' || c === '}') { depth--; continue; }
    if ((c === '\n' || c === ',') && depth === 0) { lineStart = true; continue; }
    if (/\s/.test(c)) continue;
    if (lineStart && depth === 0 && IDENT_START.test(c)) {
      let j = i;
      while (j < t.length && IDENT_CHAR.test(t[j])) j++;
      const after = t.slice(j).trimStart();
      if ((after.startsWith('=') && !after.startsWith('==')) || after.startsWith(':')) keys.push(t.slice(i, j));
      i = j - 1;
    }
    lineStart = false;
  }
  return keys;
}

module.exports = { findRefs, findTemplateRefs, findCalls, splitArgs, objectKeys };
