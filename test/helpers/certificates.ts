/**
 * A scratch CA and certificates made with the openssl command, for TLS tests. Each certificate
 * names 127.0.0.1 (IP and DNS) so clients connecting there accept it.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Certificate {
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA in `dir` (ca.crt, ca.key) and one certificate per common name, signed by it. */
export function makeCertificates(dir: string, commonNames: string[], caName = 'agentfd test CA'): { ca: Certificate; certs: Record<string, Certificate> } {
  const slug = caName.replace(/\W+/g, '-');
  const ca = { cert: path.join(dir, `${slug}.crt`), key: path.join(dir, `${slug}.key`) };
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${caName}`, '-keyout', ca.key, '-out', ca.cert]);
  const ext = path.join(dir, 'san.ext');
  writeFileSync(ext, 'subjectAltName = DNS:127.0.0.1, DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n');
  const certs: Record<string, Certificate> = {};
  for (const cn of commonNames) {
    const base = path.join(dir, `${slug}-${cn}`);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${base}.key`, '-out', `${base}.csr`]);
    openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', `${base}.crt`]);
    certs[cn] = { cert: `${base}.crt`, key: `${base}.key` };
  }
  return { ca, certs };
}
