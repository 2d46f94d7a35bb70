#!/usr/bin/env node
// The agentfd command. The code lives in dist/ (compiled from src/ by `npm install` or `npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('agentfd: dist/cli/main.js is missing; run `npm install` (or `npm run build`) in the agentfd folder first.\n');
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
