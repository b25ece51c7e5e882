'use strict';
// Which files the checker reads: every .tf, .tfvars and .hcl under a folder, in a stable order,
// skipping node_modules, .terraform and the broken fixtures (which are checked one by one).
const fs = require('fs');
const path = require('path');

const SKIP = new Set(['node_modules', '.terraform', '.git']);
const HCL_EXT = ['.tf', '.tfvars', '.hcl'];

function listHclFiles(dir, opts = {}) {
  const out = [];
  const skipDirs = opts.skipDirs || [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (SKIP.has(e.name) || skipDirs.some((s) => p === s || p.startsWith(s + path.sep))) continue;
        walk(p);
      } else if (HCL_EXT.some((x) => e.name.endsWith(x))) {
        out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}

module.exports = { listHclFiles, HCL_EXT };
