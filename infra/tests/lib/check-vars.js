'use strict';
// Checks the per-environment inputs under environments/<env>/ against the roots:
//   common.tfvars                 read by every root: each name must be a variable of every root
//   <root>.tfvars, <root>-<x>.tfvars  one instance of a root (a provider or consumer per service)
//   backend.hcl                   the S3 backend's shared settings: known arguments, encryption and
//                                 state locking on
// Every name set must be a variable of the root, values must have the variable's shape, and every
// variable without a default must be set by common.tfvars or the instance's file.
const path = require('path');
const { attr } = require('./hcl');
const { S3_BACKEND_ARGS } = require('./check-schema');

function shapeOf(expr) {
  const e = expr.trim();
  if (e.startsWith('"') || e.startsWith('<<')) return 'string';
  if (/^-?[0-9]/.test(e)) return 'number';
  if (e === 'true' || e === 'false') return 'bool';
  if (e === 'null') return 'null';
  if (e.startsWith('[')) return 'list';
  if (e.startsWith('{')) return 'map';
  return 'expression';
}

function expectedShape(typeExpr) {
  if (!typeExpr) return null;
  const t = typeExpr.trim();
  if (t === 'string') return ['string'];
  if (t === 'number') return ['number'];
  if (t === 'bool') return ['bool'];
  if (/^(list|set|tuple)\b/.test(t)) return ['list'];
  if (/^(map|object)\b/.test(t)) return ['map'];
  return null;
}

function checkVars(tree, stats) {
  const { report } = tree;
  const roots = [...tree.modules.values()].filter((m) => m.isRoot && !m.broken);
  const rootByName = new Map(roots.map((m) => [path.basename(m.dir), m]));
  const label = (m) => path.relative(tree.base, m.dir) || path.basename(m.dir);
  const envs = new Map();
  for (const o of tree.others) {
    const rel = path.relative(tree.base, o.file).split(path.sep);
    if (rel[0] !== 'environments' || rel.length !== 3) {
      report.error('tfvars', o.file, 0, 'variable and backend files live in environments/<env>/');
      continue;
    }
    if (!envs.has(rel[1])) envs.set(rel[1], []);
    envs.get(rel[1]).push(o);
  }
  for (const [env, files] of envs) {
    const common = files.find((f) => path.basename(f.file) === 'common.tfvars');
    const backend = files.find((f) => path.basename(f.file) === 'backend.hcl');
    if (!backend) report.error('tfvars', null, 0, `environments/${env}: no backend.hcl`);
    else checkBackendFile(backend, report);
    if (common) {
      for (const a of common.items) {
        for (const r of roots) {
          if (a.kind === 'attr' && !r.variables.has(a.name)) {
            report.error('tfvars', common.file, a.line, `${JSON.stringify(a.name)} is not a variable of root ${label(r)} (common.tfvars is read by every root)`);
          }
        }
      }
    }
    const covered = new Set();
    for (const f of files) {
      const base = path.basename(f.file);
      if (!base.endsWith('.tfvars') || base === 'common.tfvars') continue;
      const stem = base.replace(/\.tfvars$/, '');
      const rootName = [...rootByName.keys()].sort((a, b) => b.length - a.length).find((n) => stem === n || stem.startsWith(`${n}-`));
      if (!rootName) {
        report.error('tfvars', f.file, 0, `no root named like ${JSON.stringify(stem)} (roots: ${[...rootByName.keys()].join(', ')})`);
        continue;
      }
      covered.add(rootName);
      stats.tfvars++;
      const root = rootByName.get(rootName);
      const set = new Map();
      for (const src of [common, f].filter(Boolean)) {
        for (const a of src.items) if (a.kind === 'attr') set.set(a.name, a);
      }
      for (const a of f.items) {
        if (a.kind !== 'attr') continue;
        if (!root.variables.has(a.name)) {
          report.error('tfvars', f.file, a.line, `${JSON.stringify(a.name)} is not a variable of root ${label(root)}`);
        }
      }
      for (const [name, a] of set) {
        const v = root.variables.get(name);
        if (!v) continue;
        const want = expectedShape(attr(v.body, 'type') && attr(v.body, 'type').expr);
        const got = shapeOf(a.expr);
        if (want && got !== 'null' && got !== 'expression' && !want.includes(got)) {
          report.error('tfvars', a.file, a.line, `${name}: variable type is ${attr(v.body, 'type').expr.trim().split('\n')[0]}, value is a ${got}`);
        }
      }
      for (const [name, v] of root.variables) {
        if (!attr(v.body, 'default') && !set.has(name)) {
          report.error('tfvars', f.file, 0, `root ${label(root)} requires ${JSON.stringify(name)}, set neither here nor in common.tfvars`);
        }
      }
    }
    for (const name of rootByName.keys()) {
      if (!covered.has(name)) report.warn('tfvars', null, 0, `environments/${env}: no tfvars for root ${name}`);
    }
  }
}

function checkBackendFile(f, report) {
  const seen = new Map();
  for (const a of f.items) {
    if (a.kind !== 'attr') {
      report.error('tfvars', f.file, a.line, `backend.hcl: unexpected block ${JSON.stringify(a.type)}`);
      continue;
    }
    seen.set(a.name, a);
    if (!S3_BACKEND_ARGS.has(a.name)) report.error('tfvars', f.file, a.line, `backend.hcl: the S3 backend has no argument ${JSON.stringify(a.name)}`);
  }
  for (const req of ['bucket', 'region']) {
    if (!seen.has(req)) report.error('tfvars', f.file, 0, `backend.hcl: missing ${req}`);
  }
  if (!seen.has('use_lockfile') || seen.get('use_lockfile').expr.trim() !== 'true') {
    report.error('policy', f.file, seen.has('use_lockfile') ? seen.get('use_lockfile').line : 0, 'backend.hcl: state locking must be on (use_lockfile = true)');
  }
  if (!seen.has('encrypt') || seen.get('encrypt').expr.trim() !== 'true') {
    report.error('policy', f.file, seen.has('encrypt') ? seen.get('encrypt').line : 0, 'backend.hcl: state must be encrypted (encrypt = true)');
  }
}

module.exports = { checkVars };
