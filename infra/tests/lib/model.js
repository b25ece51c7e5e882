'use strict';
// Loads a tree of Terraform files into modules (one per folder holding .tf files), after checking
// syntax with HashiCorp's parser (hcl2json, compiled to wasm) and formatting with hclwrite (the
// formatter `terraform fmt` runs).
const fs = require('fs');
const path = require('path');
const hcl2json = require('@cdktf/hcl2json');
const { format } = require('@cdktf/hcl-tools');
const { parseFile, blocks, attr } = require('./hcl');
const { listHclFiles } = require('./files');

class Report {
  constructor(base) {
    this.base = base;
    this.errors = [];
    this.warnings = [];
    this.counts = {};
  }

  rel(file) {
    return path.relative(this.base, file) || path.basename(file);
  }

  add(list, check, file, line, msg) {
    const where = file ? `${this.rel(file)}${line ? `:${line}` : ''}` : '(tree)';
    list.push({ check, file: file ? this.rel(file) : null, line: line || 0, msg, text: `${where}: [${check}] ${msg}` });
    this.counts[check] = (this.counts[check] || 0) + (list === this.errors ? 1 : 0);
  }

  error(check, file, line, msg) { this.add(this.errors, check, file, line, msg); }
  warn(check, file, line, msg) { this.add(this.warnings, check, file, line, msg); }
}

// "parse config: [f.tf:3,1-1: Summary; Detail f.tf:4,2-3: Summary2; Detail2]" -> diagnostics
function parseDiagnostics(message, fileName) {
  const esc = fileName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`${esc}:(\\d+),(\\d+)(?:-\\d+)?(?:,\\d+)?: `, 'g');
  const hits = [];
  let m;
  while ((m = re.exec(message))) hits.push({ index: m.index, end: re.lastIndex, line: Number(m[1]), col: Number(m[2]) });
  return hits.map((h, i) => {
    let text = message.slice(h.end, i + 1 < hits.length ? hits[i + 1].index : message.length).trim();
    text = text.replace(/\]$/, '').trim();
    return { line: h.line, col: h.col, text };
  });
}

async function syntaxAndFormat(file, text, report) {
  const name = report.rel(file);
  let json = null;
  try {
    json = await hcl2json.parse(name, text);
  } catch (e) {
    const diags = parseDiagnostics(String(e && e.message ? e.message : e), name);
    if (diags.length === 0) report.error('syntax', file, 0, String(e));
    for (const d of diags) report.error('syntax', file, d.line, d.text);
    return null;
  }
  const formatted = await format(text);
  if (formatted !== text) {
    const a = text.split('\n');
    const b = formatted.split('\n');
    let line = 0;
    while (line < a.length && a[line] === b[line]) line++;
    report.error('fmt', file, line + 1, `not formatted as terraform fmt would (expected: ${JSON.stringify((b[line] || '').trim())}); run: node infra/tests/bin/fmt.js --write`);
  }
  return json;
}

const TOP_LABELS = {
  terraform: 0, locals: 0, provider: 1, variable: 1, output: 1, module: 1, resource: 2, data: 2,
  ephemeral: 2, check: 1, moved: 0, import: 0, removed: 0,
};

function newModule(dir) {
  return {
    dir, files: [], variables: new Map(), locals: new Map(), outputs: new Map(), resources: new Map(),
    data: new Map(), modules: new Map(), providers: [], terraform: [], checks: [], json: [],
    callers: [], isRoot: true, templates: [],
  };
}

function declare(map, key, value, report, what) {
  if (map.has(key)) {
    const prev = map.get(key);
    report.error('structure', value.file, value.line, `duplicate ${what} ${JSON.stringify(key)} (first declared at ${report.rel(prev.file)}:${prev.line})`);
    return;
  }
  map.set(key, value);
}

async function loadTree(base, opts = {}) {
  const report = new Report(base);
  const exclude = (opts.exclude || []).map((e) => path.join(base, e));
  const files = listHclFiles(base, { skipDirs: exclude });
  const modules = new Map();
  const others = []; // .tfvars and .hcl
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const json = await syntaxAndFormat(file, text, report);
    if (!file.endsWith('.tf')) {
      if (json) others.push({ file, text, json, items: parseFile(file, text).items });
      continue;
    }
    const dir = path.dirname(file);
    if (!modules.has(dir)) modules.set(dir, newModule(dir));
    const mod = modules.get(dir);
    mod.files.push(file);
    if (!json) { mod.broken = true; continue; }
    mod.json.push({ file, json });
    let items;
    try {
      ({ items } = parseFile(file, text));
    } catch (e) {
      report.error('structure', file, 0, `internal reader could not follow the file: ${e.message}`);
      mod.broken = true;
      continue;
    }
    for (const b of items) {
      if (b.kind === 'attr') {
        report.error('structure', file, b.line, `unexpected argument ${JSON.stringify(b.name)} at the top level of a .tf file`);
        continue;
      }
      if (!(b.type in TOP_LABELS)) {
        report.error('structure', file, b.line, `unknown block type ${JSON.stringify(b.type)}`);
        continue;
      }
      if (b.labels.length !== TOP_LABELS[b.type]) {
        report.error('structure', file, b.line, `a ${b.type} block takes ${TOP_LABELS[b.type]} label(s), not ${b.labels.length}`);
        continue;
      }
      switch (b.type) {
        case 'variable': declare(mod.variables, b.labels[0], b, report, 'variable'); break;
        case 'output': declare(mod.outputs, b.labels[0], b, report, 'output'); break;
        case 'module': declare(mod.modules, b.labels[0], b, report, 'module call'); break;
        case 'resource': declare(mod.resources, `${b.labels[0]}.${b.labels[1]}`, b, report, 'resource'); break;
        case 'data': declare(mod.data, `${b.labels[0]}.${b.labels[1]}`, b, report, 'data source'); break;
        case 'provider': mod.providers.push(b); break;
        case 'terraform': mod.terraform.push(b); break;
        case 'check': mod.checks.push(b); break;
        case 'locals':
          for (const a of b.body) {
            if (a.kind === 'attr') declare(mod.locals, a.name, a, report, 'local value');
            else report.error('structure', file, a.line, 'locals hold arguments only');
          }
          break;
        default: break;
      }
    }
  }
  // Module calls with local sources link child and caller.
  for (const mod of modules.values()) {
    for (const [name, call] of mod.modules) {
      const src = attr(call.body, 'source');
      if (!src) continue;
      const m = /^"(\.\.?\/[^"]*)"$/.exec(src.expr);
      if (!m) continue;
      const childDir = path.resolve(mod.dir, m[1]);
      call.childDir = childDir;
      const child = modules.get(childDir);
      if (child) {
        child.isRoot = false;
        child.callers.push({ mod, name, call });
      }
    }
  }
  return { base, report, modules, others, fileCount: files.length };
}

// The JSON form (hcl2json) of one top-level block of a module: resource/data by address, locals
// by name, variables by name.
function jsonOf(mod, kind, a, b) {
  for (const { json } of mod.json) {
    if (kind === 'locals') {
      for (const l of json.locals || []) if (a in l) return l[a];
    } else if (kind === 'variable' || kind === 'output' || kind === 'module') {
      const v = (json[kind] || {})[a];
      if (v) return v[0];
    } else {
      const v = ((json[kind] || {})[a] || {})[b];
      if (v) return v[0];
    }
  }
  return undefined;
}

module.exports = { loadTree, Report, jsonOf, blocks, attr, parseDiagnostics };
