'use strict';
// Reads the hashicorp/aws provider schema out of the generated bindings in @cdktn/provider-aws.
//
// Each resource, data source and the provider itself has a folder lib/<name>/ holding
//   index.d.ts: the config interfaces. A member without `?` is required; its JSDoc link names the
//               Terraform attribute (`...#acceptance_required`); its type names a nested struct,
//               as `Struct` (at most one) or `Struct[] | cdktn.IResolvable` (a list or set);
//   index.js:   synthesizeHclAttributes()/<struct>ToHclTerraform(), which say whether each member
//               is written as a block (`isBlock: true`) or as an argument, and the getters
//               (`getStringAttribute('arn')`, `new XList(this, "name")`) that name every attribute a
//               reference may read, computed ones included.
// Folder names follow the Terraform type name exactly (aws_vpc_endpoint -> vpc-endpoint,
// data source aws_vpc -> data-aws-vpc); the file's own tfResourceType is checked against it.
const fs = require('fs');
const path = require('path');

const PKG = '@cdktn/provider-aws';

function pkgRoot() {
  return path.dirname(require.resolve(`${PKG}/package.json`));
}

function providerVersion() {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgRoot(), 'package.json'), 'utf8'));
  // The README of every release names the provider version it was generated from; the JSDoc links
  // carry it too ("hashicorp/aws/6.66.0/docs"), which is what we read.
  const dts = fs.readFileSync(path.join(pkgRoot(), 'lib', 'vpc', 'index.d.ts'), 'utf8');
  const m = dts.match(/providers\/hashicorp\/aws\/([0-9.]+)\/docs/);
  return { bindings: pkg.version, aws: m ? m[1] : 'unknown' };
}

function dirFor(kind, type) {
  if (kind === 'provider') return 'provider';
  if (!type.startsWith('aws_')) return null;
  if (kind === 'data') return 'data-' + type.replace(/_/g, '-');
  if (kind === 'ephemeral') return 'ephemeral-' + type.replace(/_/g, '-');
  return type.slice(4).replace(/_/g, '-');
}

function camelToSnake(s) {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

// Splits the body of an interface into members: { jsdoc, name, optional, type }.
function parseInterfaceMembers(body) {
  const members = [];
  let i = 0;
  let jsdoc = '';
  while (i < body.length) {
    const rest = body.slice(i);
    const ws = rest.match(/^\s+/);
    if (ws) { i += ws[0].length; continue; }
    if (rest.startsWith('/**')) {
      const end = body.indexOf('*/', i);
      jsdoc = body.slice(i, end + 2);
      i = end + 2;
      continue;
    }
    const m = rest.match(/^readonly (\w+)(\??): /);
    if (!m) throw new Error(`cannot read interface member near: ${rest.slice(0, 80)}`);
    i += m[0].length;
    // The type runs to the `;` at brace depth 0.
    let depth = 0;
    let j = i;
    for (; j < body.length; j++) {
      const c = body[j];
      if (c === '{') depth++;
      else if (c === '}') depth--;
      else if (c === ';' && depth === 0) break;
    }
    members.push({ jsdoc, name: m[1], optional: m[2] === '?', type: body.slice(i, j).trim() });
    i = j + 1;
    jsdoc = '';
  }
  return members;
}

function parseDts(text) {
  const interfaces = new Map();
  const re = /^export interface (\w+)(?: extends [\w.]+)? \{\n([\s\S]*?)^\}/gm;
  let m;
  while ((m = re.exec(text))) interfaces.set(m[1], parseInterfaceMembers(m[2]));
  const cls = text.match(/^export declare class (\w+) extends cdktn\.Terraform(?:Resource|DataSource|Provider|EphemeralResource)\b[\s\S]*?tfResourceType = "([\w]+)"/m);
  return { interfaces, className: cls ? cls[1] : null, tfType: cls ? cls[2] : null };
}

// { snake_name: { isBlock, type, storage } } for one ToHclTerraform function or synthesizeHclAttributes.
function parseHclAttrs(fnBody) {
  const out = {};
  const re = /(\w+): \{\s*value: [^\n]*\n\s*isBlock: (true|false),\s*type: "(\w+)",\s*storageClassType: "(\w+)",/g;
  let m;
  while ((m = re.exec(fnBody))) out[m[1]] = { isBlock: m[2] === 'true', type: m[3], storage: m[4] };
  return out;
}

function sliceFunction(js, startIdx) {
  // From the opening brace after startIdx to its match (the generated code has no braces in strings).
  let i = js.indexOf('{', startIdx);
  let depth = 0;
  for (let j = i; j < js.length; j++) {
    if (js[j] === '{') depth++;
    else if (js[j] === '}' && --depth === 0) return js.slice(i, j + 1);
  }
  return js.slice(i);
}

function lowerFirst(s) { return s[0].toLowerCase() + s.slice(1); }

class Schema {
  constructor() {
    this.root = path.join(pkgRoot(), 'lib');
    this.cache = new Map();
    this.version = providerVersion();
    this.loadedFiles = 0;
  }

  // kind: 'resource' | 'data' | 'provider' | 'ephemeral'. Returns null when the type does not exist.
  get(kind, type) {
    const key = `${kind}:${type}`;
    if (this.cache.has(key)) return this.cache.get(key);
    const s = this.load(kind, type);
    this.cache.set(key, s);
    return s;
  }

  load(kind, type) {
    const dir = dirFor(kind, type);
    if (!dir) return null;
    const dtsPath = path.join(this.root, dir, 'index.d.ts');
    if (!fs.existsSync(dtsPath)) return null;
    const dts = parseDts(fs.readFileSync(dtsPath, 'utf8'));
    const js = fs.readFileSync(path.join(this.root, dir, 'index.js'), 'utf8');
    this.loadedFiles++;
    if (kind !== 'provider' && dts.tfType !== type) {
      throw new Error(`${dir}/index.d.ts declares ${dts.tfType}, expected ${type}`);
    }
    const className = dts.className || 'AwsProvider';
    const configName = `${className === 'AwsProvider' ? 'AwsProvider' : className}Config`;

    // Attributes a reference may read: the main class's getters.
    const clsStart = js.search(new RegExp(`^class ${className} extends cdktn\\.Terraform`, 'm'));
    const clsBody = clsStart >= 0 ? sliceFunction(js, clsStart) : '';
    const readable = new Set();
    for (const m of clsBody.matchAll(/get\w*Attribute\('([a-z0-9_]+)'\)/g)) readable.add(m[1]);
    for (const m of clsBody.matchAll(/\(this, "([a-z0-9_]+)"/g)) readable.add(m[1]);
    const hclTop = parseHclAttrs(clsBody.slice(clsBody.indexOf('synthesizeHclAttributes()')));

    const structHcl = (iface) => {
      const fname = `${lowerFirst(iface)}ToHclTerraform`;
      const idx = js.indexOf(`function ${fname}(struct)`);
      return idx >= 0 ? parseHclAttrs(sliceFunction(js, idx)) : {};
    };

    const seen = new Map();
    const build = (ifaceName, hcl) => {
      if (seen.has(ifaceName)) return seen.get(ifaceName);
      const node = { name: ifaceName, attributes: {} };
      seen.set(ifaceName, node);
      const members = dts.interfaces.get(ifaceName);
      if (!members) throw new Error(`${dir}: interface ${ifaceName} not found`);
      for (const mem of members) {
        const link = mem.jsdoc.match(/#([a-z0-9_]+) \w+#/);
        const snake = link ? link[1] : camelToSnake(mem.name);
        const h = hcl[snake];
        const structMatch = mem.type.match(/^(\w+)(\[\])?(?: \| cdktn\.IResolvable)?$/);
        let nested = null;
        let single = false;
        if (structMatch && dts.interfaces.has(structMatch[1])) {
          nested = build(structMatch[1], structHcl(structMatch[1]));
          single = !structMatch[2];
        }
        node.attributes[snake] = {
          required: !mem.optional,
          isBlock: h ? h.isBlock : false,
          collection: h ? h.type : 'simple',
          single,
          nested,
        };
      }
      return node;
    };
    const top = build(configName, hclTop);
    // Resources may always read back what they set.
    for (const n of Object.keys(top.attributes)) readable.add(n);
    return { kind, type, dir, root: top, readable };
  }
}

module.exports = { Schema, dirFor, camelToSnake };

if (require.main === module) {
  // `node lib/schema.js resource aws_vpc_endpoint_service` prints what the checker knows of a type.
  const [kind, type] = process.argv.slice(2);
  const s = new Schema().get(kind, type || 'aws');
  if (!s) { console.error(`no ${kind} ${type} in ${PKG}`); process.exit(1); }
  const show = (node, ind) => {
    for (const [k, a] of Object.entries(node.attributes)) {
      const flags = [a.required ? 'required' : 'optional', a.isBlock ? (a.single ? 'block(max 1)' : `block(${a.collection})`) : (a.nested ? `nested attr(${a.collection})` : 'arg')];
      console.log(`${ind}${k}  ${flags.join(' ')}`);
      if (a.nested && ind.length < 16) show(a.nested, ind + '  ');
    }
  };
  show(s.root, '');
  console.log('readable:', [...s.readable].sort().join(' '));
}
