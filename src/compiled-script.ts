/**
 * The compiled JavaScript of a script agentfd starts in a worker or child process (an agent host,
 * the plugin probe, a compression worker). Next to the calling module in dist/; when agentfd runs
 * from its TypeScript sources (under vitest), the one `npm run build` put in dist/.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentfdError } from './errors.js';

/** `caller` is the calling module's import.meta.url; `name` the script's file name beside it (e.g. "host-main.js"). */
export function compiledScript(caller: string, name: string): string {
  const here = fileURLToPath(caller);
  const script = here.endsWith('.ts')
    ? path.join(path.dirname(here).replace(/([\\/])src([\\/]|$)/, '$1dist$2'), name)
    : path.join(path.dirname(here), name);
  if (!existsSync(script)) throw new AgentfdError('E_INTERNAL', `${script} is missing; run npm run build`);
  return script;
}
