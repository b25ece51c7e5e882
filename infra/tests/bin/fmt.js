#!/usr/bin/env node
'use strict';
// `node infra/tests/bin/fmt.js [--write] [dir]`: terraform fmt for machines without Terraform.
// Formats every .tf, .tfvars and .hcl file under dir (default: infra/) with hclwrite.Format, the
// formatter `terraform fmt` runs. Without --write it only lists the files that would change.
const fs = require('fs');
const path = require('path');
const { format } = require('@cdktf/hcl-tools');
const { listHclFiles } = require('../lib/files');

(async () => {
  const args = process.argv.slice(2);
  const write = args.includes('--write');
  const dir = path.resolve(args.find((a) => !a.startsWith('--')) || path.join(__dirname, '..', '..'));
  let changed = 0;
  // The checker's fixtures are broken on purpose (some in their formatting): never rewrite them.
  for (const f of listHclFiles(dir, { skipDirs: [path.join(__dirname, '..', 'fixtures')] })) {
    const src = fs.readFileSync(f, 'utf8');
    const out = await format(src);
    if (out !== src) {
      changed++;
      console.log(path.relative(process.cwd(), f));
      if (write) fs.writeFileSync(f, out);
    }
  }
  process.exit(changed && !write ? 1 : 0);
})();
