/**
 * agentfd serve with TLS against a real Bacula 9.6 Director and Storage Daemon that both require it
 * (lab.sh with TLS=1: the Director's Client resource and the SD's Storage resource say TLS Require,
 * and the SD checks our certificate's name). A job that ends "Backup OK" therefore went over TLS on
 * both links: Director to agentfd (we are the TLS server) and agentfd to the SD (we are the client).
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, describeTree, restoredPath } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-tls', { ports: { dir: 9141, fd: 9142, sd: 9143 }, env: { TLS: '1' } });
const tlsDir = path.join(bacula.dir, 'etc', 'tls');
const data = path.join(bacula.dir, 'data');

/** [serve.tls] with the lab's certificates; `overrides` replace lines by key. */
function tlsConfig(overrides: Record<string, string> = {}): string {
  const settings: Record<string, string> = {
    require: 'true',
    certificate: JSON.stringify(path.join(tlsDir, 'fd.crt')),
    key: JSON.stringify(path.join(tlsDir, 'fd.key')),
    ca_certificate_file: JSON.stringify(path.join(tlsDir, 'ca.crt')),
    allowed_cn: '["lab-dir"]',
    ...overrides,
  };
  return ['[serve.tls]', ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`)].join('\n');
}

async function restartServe(configExtra: string): Promise<void> {
  await bacula.stopServe();
  bacula.serveLog = '';
  await bacula.startServe(configExtra);
}

beforeAll(async () => {
  bacula.start();
  mkdirSync(path.join(data, 'sub'), { recursive: true });
  writeFileSync(path.join(data, 'a.txt'), 'over TLS\n');
  writeFileSync(path.join(data, 'sub', 'random.bin'), randomBytes(2_500_000));
  symlinkSync('a.txt', path.join(data, 'link'));
}, 300_000);

afterAll(() => bacula.destroy());

describe('agentfd serve over TLS with a real Bacula 9.6 Director and Storage Daemon', () => {
  it('is refused by a Director that requires TLS when [serve.tls] is not configured, and says so', async () => {
    await restartServe('');
    const out = bacula.console('status client=agentfd-fd');
    expect(out).not.toMatch(/agentfd-fd Version: agentfd/);
    await bacula.waitForServeLog(/Director "lab-dir" requires TLS: configure \[serve\.tls\]/);
  });

  it('refuses a Director whose certificate is not in allowed_cn', async () => {
    await restartServe(tlsConfig({ allowed_cn: '["another-dir"]' }));
    const out = bacula.console('status client=agentfd-fd');
    expect(out).not.toMatch(/agentfd-fd Version: agentfd/);
    await bacula.waitForServeLog(/presented a certificate for lab-dir.*allowed_cn \(another-dir\) does not list/);
  });

  it('answers status, backs up and restores byte for byte with TLS on both links', async () => {
    await restartServe(tlsConfig());
    expect(bacula.serveLog).toMatch(/TLS required \(.*fd\.crt\)/);
    expect(bacula.console('status client=agentfd-fd')).toMatch(/agentfd-fd Version: agentfd \S+ \(Bacula FD protocol 213\)/);
    const { report, jobId } = bacula.runJob('LabBackupGzip');
    expect(report).toMatch(/FD Files Written:\s+5\b/);
    const where = path.join(bacula.dir, 'restore-tls');
    bacula.restore(jobId, where);
    expect(describeTree(restoredPath(where, data))).toEqual(describeTree(data));
  });

  it("fails the job with the reason when the Storage Daemon's certificate is not from our CA", async () => {
    // The Director's own certificate as our only CA: it signed nothing, so the SD cannot be verified.
    await restartServe(tlsConfig({ ca_certificate_file: JSON.stringify(path.join(tlsDir, 'dir.crt')), verify_peer: 'false', allowed_cn: '[]' }));
    const report = bacula.runJobAnyEnd('LabBackup');
    expect(report).toMatch(/Termination:\s+\*\*\* Backup Error \*\*\*/);
    expect(report).toMatch(/TLS handshake with the Storage Daemon at 127\.0\.0\.1:9143 failed/);
  });
});
