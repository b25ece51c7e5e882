'use strict';
// Checks that references resolve and that modules are wired correctly:
//   var.X, local.X, module.X.OUT, data.T.N.ATTR, T.N.ATTR name something declared in the module;
//   resource/data attributes exist in the schema; instance keys are used exactly where count or
//   for_each is set; each.* / count.* only where they are defined;
//   module calls: the source folder exists, arguments are the child's variables, required
//   variables are given, providers maps name configuration aliases the child declares with
//   providers the caller has, and no aws resource falls back on a default provider a root lacks;
//   templatefile(): the template exists and every name it uses is passed to it.
const fs = require('fs');
const path = require('path');
const { attr, blocks, Source } = require('./hcl');
const { findRefs, findTemplateRefs, findCalls, splitArgs, objectKeys } = require('./refs');

const GLOBAL_ROOTS = new Set(['path', 'terraform']);

function refText(r) {
  return [r.root, ...r.parts].join('.').replace(/\.\[\]/g, '[...]');
}

class RefChecker {
  constructor(tree, schema, stats) {
    this.tree = tree;
    this.report = tree.report;
    this.schema = schema;
    this.stats = stats;
  }

  // Walks every argument of a body, with the names that are in scope there.
  walkBody(mod, body, ctx) {
    for (const it of body) {
      if (it.kind === 'attr') {
        if (ctx.skipAttrs && ctx.skipAttrs.has(it.name)) continue;
        this.checkExpr(mod, it, ctx);
        continue;
      }
      if (it.type === 'lifecycle') {
        for (const a of it.body) {
          if (a.kind === 'attr' && a.name === 'ignore_changes') continue; // attribute names, not references
          if (a.kind === 'attr') this.checkExpr(mod, a, ctx);
          else this.walkBody(mod, a.body, ctx);
        }
        continue;
      }
      if (it.type === 'dynamic') {
        const iter = attr(it.body, 'iterator');
        const name = iter ? iter.expr.trim() : it.labels[0];
        const fe = attr(it.body, 'for_each');
        if (fe) this.checkExpr(mod, fe, ctx);
        const inner = { ...ctx, iterators: new Set([...(ctx.iterators || []), name]) };
        for (const c of blocks(it.body, 'content')) this.walkBody(mod, c.body, inner);
        continue;
      }
      this.walkBody(mod, it.body, ctx);
    }
  }

  checkExpr(mod, a, ctx) {
    if (!this.sources) this.sources = new Map();
    if (!this.sources.has(a.file)) this.sources.set(a.file, new Source(a.file, fs.readFileSync(a.file, 'utf8')));
    const src = this.sources.get(a.file);
    const lineOf = (off) => src.lineOf(off);
    for (const r of findRefs(a.expr, a.exprOffset)) {
      this.stats.references++;
      const msg = this.resolve(mod, r, ctx);
      if (msg) this.report.error('refs', a.file, lineOf(r.offset), `${refText(r)}: ${msg}`);
    }
    for (const call of findCalls(a.expr, 'templatefile')) this.checkTemplatefile(mod, a, call, lineOf(a.exprOffset + call.offset));
    for (const call of findCalls(a.expr, 'file')) {
      const args = splitArgs(a.expr, call.argsStart);
      const p = this.staticPath(mod, args[0]);
      if (p && !fs.existsSync(p)) this.report.error('refs', a.file, lineOf(a.exprOffset + call.offset), `file(): ${path.relative(this.tree.base, p)} does not exist`);
    }
  }

  staticPath(mod, arg) {
    const m = /^"\$\{path\.module\}\/([^"$]+)"$/.exec((arg || '').trim());
    return m ? path.join(mod.dir, m[1]) : null;
  }

  checkTemplatefile(mod, a, call, line) {
    const args = splitArgs(a.expr, call.argsStart);
    const p = this.staticPath(mod, args[0]);
    if (!p) {
      this.report.error('refs', a.file, line, 'templatefile(): give the path as "${path.module}/..." so that it can be checked');
      return;
    }
    const rel = path.relative(this.tree.base, p);
    if (!fs.existsSync(p)) {
      this.report.error('refs', a.file, line, `templatefile(): ${rel} does not exist`);
      return;
    }
    const keys = objectKeys(args[1] || '');
    if (!keys) {
      this.report.error('refs', a.file, line, `templatefile(${rel}): pass its variables as an object constructor { name = ... } so that they can be checked`);
      return;
    }
    const text = fs.readFileSync(p, 'utf8');
    const used = new Set();
    for (const r of findTemplateRefs(text)) {
      used.add(r.root);
      if (!keys.includes(r.root)) {
        const tline = text.slice(0, r.offset).split('\n').length;
        this.report.error('refs', p, tline, `${refText(r)}: not among the variables templatefile() passes at ${path.relative(this.tree.base, a.file)}:${line} (${keys.join(', ')})`);
      }
    }
    for (const k of keys) {
      if (!used.has(k)) this.report.warn('refs', a.file, line, `templatefile(${rel}): variable ${JSON.stringify(k)} is passed but never used`);
    }
    this.stats.templates++;
  }

  resolve(mod, r, ctx) {
    const { root, parts } = r;
    if (ctx.iterators && ctx.iterators.has(root)) return null;
    if (GLOBAL_ROOTS.has(root)) {
      if (root === 'path' && !['module', 'root', 'cwd'].includes(parts[0])) return 'path has module, root and cwd';
      return null;
    }
    switch (root) {
      case 'var':
        if (!mod.variables.has(parts[0])) return `no variable ${JSON.stringify(parts[0])} is declared in ${this.rel(mod.dir)}`;
        mod.usedVars.add(parts[0]);
        return null;
      case 'local':
        return mod.locals.has(parts[0]) ? null : `no local value ${JSON.stringify(parts[0])} in ${this.rel(mod.dir)}`;
      case 'each':
        if (!ctx.forEach) return 'each is only defined in a block with for_each';
        return ['key', 'value'].includes(parts[0]) ? null : 'each has key and value';
      case 'count':
        if (!ctx.count) return 'count.index is only defined in a block with count';
        return parts[0] === 'index' ? null : 'count has index';
      case 'self':
        return ctx.self ? null : 'self is only defined in provisioner, connection and postcondition blocks';
      case 'module': return this.resolveModule(mod, r);
      case 'data': return this.resolveResource(mod, 'data', parts[0], parts[1], parts.slice(2));
      default:
        if (/^[a-z0-9]+_[a-z0-9_]+$/.test(root) && parts.length >= 1) {
          return this.resolveResource(mod, 'resource', root, parts[0], parts.slice(1));
        }
        return `unknown reference root ${JSON.stringify(root)}`;
    }
  }

  rel(p) { return path.relative(this.tree.base, p) || 'the top folder'; }

  resolveResource(mod, kind, type, name, rest) {
    const map = kind === 'data' ? mod.data : mod.resources;
    const addr = `${type}.${name}`;
    const b = map.get(addr);
    const shown = kind === 'data' ? `data.${addr}` : addr;
    if (!b) return `no ${kind === 'data' ? 'data source' : 'resource'} ${shown} in ${this.rel(mod.dir)}`;
    const multi = Boolean(attr(b.body, 'count') || attr(b.body, 'for_each'));
    let i = 0;
    if (rest[0] === '[]' || rest[0] === '*') {
      if (!multi && rest[0] === '[]') return `${shown} has neither count nor for_each, so it takes no instance key`;
      i = 1;
    } else if (multi && rest.length > 0) {
      return `${shown} has ${attr(b.body, 'count') ? 'count' : 'for_each'} set: pick an instance (${shown}[...]) before .${rest[0]}`;
    }
    const at = rest[i];
    if (at === undefined || at === '[]' || at === '*') return null;
    const s = this.schema.get(kind, type);
    if (s && !s.readable.has(at)) return `${type} has no attribute ${JSON.stringify(at)}`;
    return null;
  }

  resolveModule(mod, r) {
    const [name, ...rest] = r.parts;
    const call = mod.modules.get(name);
    if (!call) return `no module call ${JSON.stringify(name)} in ${this.rel(mod.dir)}`;
    const multi = Boolean(attr(call.body, 'count') || attr(call.body, 'for_each'));
    let i = 0;
    if (rest[0] === '[]' || rest[0] === '*') {
      if (!multi) return `module.${name} has neither count nor for_each, so it takes no instance key`;
      i = 1;
    } else if (multi && rest.length > 0) {
      return `module.${name} has ${attr(call.body, 'count') ? 'count' : 'for_each'} set: pick an instance before .${rest[0]}`;
    }
    const out = rest[i];
    const child = call.childDir && this.tree.modules.get(call.childDir);
    if (!child || out === undefined || out === '[]') return null;
    return child.outputs.has(out) ? null : `module ${this.rel(child.dir)} has no output ${JSON.stringify(out)}`;
  }

  providerConfigs(mod) {
    const set = new Set();
    for (const p of mod.providers) {
      if (p.labels[0] !== 'aws') continue;
      const alias = attr(p.body, 'alias');
      set.add(alias ? `aws.${JSON.parse(alias.expr)}` : 'aws');
    }
    if (!mod.isRoot) {
      set.add('aws'); // a child inherits (or is passed) the default aws provider
      for (const a of (mod.tf && mod.tf.configurationAliases) || []) set.add(a);
    }
    return set;
  }

  // Whether the module (or a module it calls without passing aws) uses the default aws provider.
  usesDefaultAws(mod, seen = new Set()) {
    if (seen.has(mod.dir)) return false;
    seen.add(mod.dir);
    for (const b of [...mod.resources.values(), ...mod.data.values()]) {
      if (b.labels[0].startsWith('aws_') && !attr(b.body, 'provider')) return true;
    }
    for (const call of mod.modules.values()) {
      const child = call.childDir && this.tree.modules.get(call.childDir);
      if (!child) continue;
      const prov = attr(call.body, 'providers');
      const keys = prov ? objectKeys(prov.expr) || [] : [];
      if (!keys.includes('aws') && this.usesDefaultAws(child, seen)) return true;
    }
    return false;
  }

  checkProviders(mod) {
    const configs = this.providerConfigs(mod);
    for (const b of [...mod.resources.values(), ...mod.data.values()]) {
      const p = attr(b.body, 'provider');
      if (p && !configs.has(p.expr.trim())) {
        this.report.error('providers', p.file, p.line, `provider ${p.expr.trim()} is not configured in ${this.rel(mod.dir)} (has: ${[...configs].join(', ') || 'none'})`);
      }
      if (!p && mod.isRoot && b.labels[0].startsWith('aws_') && !configs.has('aws')) {
        this.report.error('providers', b.file, b.line, `${b.labels.join('.')} uses the default aws provider, which this root does not configure: set provider = one of ${[...configs].join(', ')}`);
      }
    }
    if (!mod.isRoot && mod.providers.length) {
      for (const p of mod.providers) this.report.error('providers', p.file, p.line, 'a reusable module must not configure providers; declare configuration_aliases and let the caller pass them');
    }
  }

  checkModuleCall(mod, name, call) {
    const src = attr(call.body, 'source');
    const where = `module.${name}`;
    if (!src) {
      this.report.error('modules', call.file, call.line, `${where}: missing required argument "source"`);
      return;
    }
    if (!call.childDir) {
      this.report.error('modules', src.file, src.line, `${where}: only local sources ("./..." or "../...") are used in this layout`);
      return;
    }
    const child = this.tree.modules.get(call.childDir);
    if (!child) {
      this.report.error('modules', src.file, src.line, `${where}: source ${src.expr} is not a folder with .tf files`);
      return;
    }
    this.stats.moduleCalls++;
    const meta = new Set(['source', 'version', 'count', 'for_each', 'providers', 'depends_on']);
    const given = new Set();
    for (const it of call.body) {
      if (it.kind === 'block') {
        if (it.type !== 'lifecycle') this.report.error('modules', it.file, it.line, `${where}: unexpected block ${JSON.stringify(it.type)}`);
        continue;
      }
      if (meta.has(it.name)) continue;
      given.add(it.name);
      if (!child.variables.has(it.name)) {
        this.report.error('modules', it.file, it.line, `${where}: ${this.rel(child.dir)} has no variable ${JSON.stringify(it.name)}`);
      }
    }
    for (const [v, vb] of child.variables) {
      if (!attr(vb.body, 'default') && !given.has(v)) {
        this.report.error('modules', call.file, call.line, `${where}: missing required variable ${JSON.stringify(v)} of ${this.rel(child.dir)}`);
      }
    }
    // Providers.
    const prov = attr(call.body, 'providers');
    const callerConfigs = this.providerConfigs(mod);
    const childAliases = new Set((child.tf && child.tf.configurationAliases) || []);
    const passed = new Set();
    if (prov) {
      const entries = [...prov.expr.matchAll(/([A-Za-z0-9_.]+)\s*=\s*([A-Za-z0-9_.]+)/g)];
      for (const [, k, v] of entries) {
        passed.add(k);
        if (k !== 'aws' && !childAliases.has(k)) {
          this.report.error('providers', prov.file, prov.line, `${where}: ${this.rel(child.dir)} declares no configuration alias ${k}`);
        }
        if (!callerConfigs.has(v)) {
          this.report.error('providers', prov.file, prov.line, `${where}: passes ${v}, which is not configured here (has: ${[...callerConfigs].join(', ') || 'none'})`);
        }
      }
    }
    for (const a of childAliases) {
      if (!passed.has(a)) this.report.error('providers', call.file, call.line, `${where}: ${this.rel(child.dir)} needs provider ${a}: pass it in providers = { ${a} = ... }`);
    }
    if (!passed.has('aws') && mod.isRoot && !callerConfigs.has('aws') && this.usesDefaultAws(child)) {
      this.report.error('providers', call.file, call.line, `${where}: ${this.rel(child.dir)} uses the default aws provider, which this root does not configure: pass providers = { aws = ... }`);
    }
  }

  run() {
    for (const mod of this.tree.modules.values()) {
      if (mod.broken) continue;
      mod.usedVars = new Set();
    }
    for (const mod of this.tree.modules.values()) {
      if (mod.broken) continue;
      this.checkProviders(mod);
      for (const [name, call] of mod.modules) {
        this.checkModuleCall(mod, name, call);
        this.walkBody(mod, call.body.filter((x) => !(x.kind === 'attr' && ['source', 'providers'].includes(x.name))), this.metaCtx(call));
      }
      for (const b of mod.resources.values()) this.walkBody(mod, b.body, { ...this.metaCtx(b), skipAttrs: new Set(['provider']), self: true });
      for (const [addr, b] of mod.resources) this.checkPlanKnown(mod, b, addr);
      for (const [addr, b] of mod.data) this.checkPlanKnown(mod, b, `data.${addr}`);
      for (const [name, call] of mod.modules) this.checkPlanKnown(mod, call, `module.${name}`);
      for (const b of mod.data.values()) this.walkBody(mod, b.body, { ...this.metaCtx(b), skipAttrs: new Set(['provider']) });
      for (const l of mod.locals.values()) this.checkExpr(mod, l, {});
      for (const o of mod.outputs.values()) this.walkBody(mod, o.body, {});
      for (const v of mod.variables.values()) {
        for (const val of blocks(v.body, 'validation')) this.walkBody(mod, val.body, {});
        const def = attr(v.body, 'default');
        if (def) {
          for (const r of findRefs(def.expr)) this.report.error('refs', def.file, def.line, `variable ${v.labels[0]}: a default cannot refer to ${refText(r)}`);
        }
      }
      for (const p of mod.providers) this.walkBody(mod, p.body, {});
      for (const c of mod.checks) this.walkBody(mod, c.body, {});
    }
    // Names in environments/*/common.tfvars are declared by every root, used or not.
    const shared = new Set();
    for (const o of this.tree.others) {
      if (path.basename(o.file) === 'common.tfvars') for (const k of Object.keys(o.json)) shared.add(k);
    }
    for (const mod of this.tree.modules.values()) {
      if (mod.broken) continue;
      for (const [v, vb] of mod.variables) {
        if (!mod.usedVars.has(v) && !(mod.isRoot && shared.has(v))) this.report.warn('refs', vb.file, vb.line, `variable ${JSON.stringify(v)} is declared but never used`);
      }
    }
  }

  // A managed resource attribute (or a module output made of one) that an expression depends on,
  // followed through locals, module outputs and, in child modules, every caller's argument: such
  // values are unknown until apply, and count (or a for_each condition) cannot wait for them.
  unknownSource(mod, expr, seen = new Set()) {
    const key = `${mod.dir}\0${expr}`;
    if (seen.has(key)) return null;
    seen.add(key);
    for (const r of findRefs(expr)) {
      if (/^[a-z0-9]+_[a-z0-9_]+$/.test(r.root) && mod.resources.has(`${r.root}.${r.parts[0]}`)) {
        return `${r.root}.${r.parts[0]}`;
      }
      if (r.root === 'local' && mod.locals.has(r.parts[0])) {
        const s = this.unknownSource(mod, mod.locals.get(r.parts[0]).expr, seen);
        if (s) return s;
      }
      if (r.root === 'module' && mod.modules.has(r.parts[0])) {
        const call = mod.modules.get(r.parts[0]);
        const child = call.childDir && this.tree.modules.get(call.childDir);
        const outName = r.parts.find((p, i) => i > 0 && p !== '[]' && p !== '*');
        const out = child && outName && child.outputs.get(outName);
        const value = out && attr(out.body, 'value');
        const s = value && this.unknownSource(child, value.expr, seen);
        if (s) return `module.${r.parts[0]}.${outName} (${s})`;
      }
      if (r.root === 'var') {
        for (const c of mod.callers) {
          const arg = attr(c.call.body, r.parts[0]);
          const s = arg && this.unknownSource(c.mod, arg.expr, seen);
          if (s) return `var.${r.parts[0]}, which ${this.rel(c.mod.dir)} sets from ${s}`;
        }
      }
    }
    return null;
  }

  checkPlanKnown(mod, b, what) {
    const count = attr(b.body, 'count');
    if (count && !/^length\(/.test(count.expr.trim())) {
      const s = this.unknownSource(mod, count.expr);
      if (s) this.report.error('refs', count.file, count.line, `${what}: count depends on ${s}, known only after apply: use a variable known at plan time`);
    }
    const fe = attr(b.body, 'for_each');
    const cond = fe && conditionOf(fe.expr);
    if (cond) {
      const s = this.unknownSource(mod, cond);
      if (s) this.report.error('refs', fe.file, fe.line, `${what}: the for_each condition depends on ${s}, known only after apply: use a variable known at plan time`);
    }
  }

  metaCtx(b) {
    return { forEach: Boolean(attr(b.body, 'for_each')), count: Boolean(attr(b.body, 'count')) };
  }
}

// The condition of a top-level conditional expression `c ? a : b`, else null.
function conditionOf(expr) {
  let depth = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"') {
      i++;
      while (i < expr.length && expr[i] !== '"') { if (expr[i] === '\\') i++; i++; }
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === '?' && depth === 0) return expr.slice(0, i);
  }
  return null;
}

function checkRefs(tree, schema, stats) {
  new RefChecker(tree, schema, stats).run();
}

module.exports = { checkRefs };
