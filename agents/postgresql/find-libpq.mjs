// Where libpq is, for binding/binding.gyp: `node find-libpq.mjs include` prints the directory that
// holds libpq-fe.h and `libdir` the one that holds libpq.so, or nothing when libpq's header is not
// installed. Then the PostgreSQL agent is not built: `include` says so in one line on stderr (the
// rest of the build goes on), with what to install.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

function pgConfig(flag) {
  try {
    return execFileSync('pg_config', [flag], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

const candidates = [pgConfig('--includedir'), '/usr/include/postgresql', '/usr/local/include', '/usr/include'].filter(Boolean);
const include = candidates.find((dir) => existsSync(path.join(dir, 'libpq-fe.h'))) ?? '';

if (process.argv[2] === 'libdir') {
  process.stdout.write(include ? pgConfig('--libdir') : '');
} else {
  if (!include) {
    process.stderr.write(
      'agentfd: the PostgreSQL agent (agents/postgresql) is not built: libpq-fe.h was not found; install libpq-dev (Debian) or libpq-devel, then npm run build:native\n',
    );
  }
  process.stdout.write(include);
}
