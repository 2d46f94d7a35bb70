import { defineConfig } from 'vitest/config';

// The Windows lane (npm run test:windows): Windows Node.js under Wine runs test/windows/ against
// the MinGW-built agent DLLs. Wine is slower than Linux at starting processes: longer timeouts.
export default defineConfig({
  test: {
    // test/windows/ is this lane's own suite; windows-names.test.ts has Windows-only cases (real
    // kernel32 attributes) that the Linux run skips, and runs here whole.
    include: ['test/windows/**/*.test.ts', 'test/agents/windows-names.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
