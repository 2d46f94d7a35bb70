/**
 * TLS as Bacula daemons start it: on the same socket, right after CRAM-MD5, with the peer's TLS
 * hello possibly in the same TCP segment as its last plain message. Real sockets on 127.0.0.1 and
 * real certificates (the openssl command: installed on first use where the tests may).
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Bsock } from '../../src/bacula-fd/wire/bsock.js';
import type { TlsConfig } from '../../src/config/load.js';
import { loadTlsSettings, negotiateTls, tlsClient, tlsServer, type TlsSettings } from '../../src/bacula-fd/wire/tls.js';
import { makeCertificates, type Certificate } from '../helpers/certificates.js';
import { commandNeed, ensureDebianPackage, skipNote } from '../helpers/debian.js';
import { tempDir } from '../helpers/native.js';

let ca: Certificate;
let certs: Record<string, Certificate>;
let otherCa: Certificate;
let dir: string;
/** Null when openssl is there (installed now if need be), else why these tests skip. */
const MISSING = ensureDebianPackage(commandNeed('openssl', 'openssl'));

beforeAll(() => {
  if (MISSING) return;
  dir = tempDir('tls');
  ({ ca, certs } = makeCertificates(dir, ['agentfd-fd', 'lab-dir', 'lab-sd']));
  ({ ca: otherCa } = makeCertificates(dir, ['stranger'], 'another CA'));
});

function settingsFor(name: string, overrides: Partial<TlsConfig> = {}): TlsSettings {
  return loadTlsSettings({
    enable: true, require: true, certificate: certs[name]!.cert, key: certs[name]!.key, caCertificateFile: ca.cert, verifyPeer: true, allowedCn: [], ...overrides,
  })!;
}

/** A connected pair of plain sockets on 127.0.0.1. */
async function socketPair(): Promise<{ server: net.Socket; client: net.Socket; close: () => void }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const server = await accepted;
  return { server, client, close: () => { client.destroy(); server.destroy(); listener.close(); } };
}

function frame(text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(4);
  header.writeInt32BE(payload.length);
  return Buffer.concat([header, payload]);
}

/** The client side of a Director: its last plain frame and its TLS hello written back to back. */
function directorSide(socket: net.Socket, cert: Certificate, caFile: string): tls.TLSSocket {
  socket.cork();
  socket.write(frame('1000 OK auth\n'));
  const secure = tls.connect({ socket, ca: [readPem(caFile)], cert: readPem(cert.cert), key: readPem(cert.key), host: '127.0.0.1' });
  process.nextTick(() => socket.uncork());
  return secure;
}

const readPem = (file: string) => readFileSync(file);

describe.skipIf(MISSING !== null)(`TLS on a Bacula connection${skipNote(MISSING)}`, () => {
  it('takes over the socket after the last plain message, even with the TLS hello in the same segment', async () => {
    const { server, client, close } = await socketPair();
    try {
      const bsock = new Bsock(server, 'Director "lab-dir"');
      bsock.plainUntil(1);
      const director = directorSide(client, certs['lab-dir']!, ca.cert);
      expect(await bsock.receiveText()).toBe('1000 OK auth\n');
      await bsock.startTls((plain) => tlsServer(plain, settingsFor('agentfd-fd', { allowedCn: ['lab-dir'] }), 'Director "lab-dir"'));
      await new Promise<void>((resolve) => (director.authorized ? resolve() : director.once('secureConnect', () => resolve())));
      expect(director.authorized).toBe(true);
      expect(director.getProtocol()).toMatch(/^TLSv1\.[23]$/);
      // Frames both ways go through TLS now.
      await bsock.send('2000 OK Hello 213\n');
      const got = await new Promise<Buffer>((resolve) => director.once('data', resolve));
      expect(got.subarray(4).toString()).toBe('2000 OK Hello 213\n');
      director.write(frame('status'));
      expect(await bsock.receiveText()).toBe('status');
    } finally {
      close();
    }
  });

  it("refuses a Director whose certificate is not in allowed_cn, naming the certificate's names", async () => {
    const { server, client, close } = await socketPair();
    try {
      const bsock = new Bsock(server, 'Director "lab-dir"');
      bsock.plainUntil(1);
      const director = directorSide(client, certs['lab-sd']!, ca.cert);
      director.on('error', () => undefined);
      await bsock.receiveText();
      await expect(bsock.startTls((plain) => tlsServer(plain, settingsFor('agentfd-fd', { allowedCn: ['lab-dir'] }), 'Director "lab-dir"'))).rejects.toThrow(
        /presented a certificate for lab-sd, 127\.0\.0\.1, localhost, which \[serve\.tls\] allowed_cn \(lab-dir\) does not list/,
      );
      await expect(bsock.receive()).rejects.toThrow(); // the conversation is over
    } finally {
      close();
    }
  });

  it('refuses a Director without a certificate from the CA when verify_peer is on', async () => {
    const { server, client, close } = await socketPair();
    try {
      const bsock = new Bsock(server, 'Director "lab-dir"');
      bsock.plainUntil(1);
      // Signed by another CA: the handshake fails on our side.
      const strangerDir = makeCertificates(tempDir('tls-stranger'), ['lab-dir'], 'stranger CA');
      const director = directorSide(client, strangerDir.certs['lab-dir']!, ca.cert);
      director.on('error', () => undefined);
      await bsock.receiveText();
      await expect(bsock.startTls((plain) => tlsServer(plain, settingsFor('agentfd-fd'), 'Director "lab-dir"'))).rejects.toThrow(/TLS handshake with Director "lab-dir" failed/);
    } finally {
      close();
    }
  });

  it("checks a Storage Daemon's certificate against the CA and its address", async () => {
    for (const [caFile, expected] of [[ca.cert, null], [otherCa.cert, /TLS handshake with the Storage Daemon at 127\.0\.0\.1:\d+ failed: .*(unable to verify|self.signed|local issuer)/i]] as const) {
      const { server, client, close } = await socketPair();
      try {
        const sd = new tls.TLSSocket(server, { isServer: true, cert: readPem(certs['lab-sd']!.cert), key: readPem(certs['lab-sd']!.key) });
        sd.on('error', () => undefined);
        const bsock = new Bsock(client, 'the Storage Daemon');
        const started = bsock.startTls((plain) => tlsClient(plain, settingsFor('agentfd-fd', { caCertificateFile: caFile }), '127.0.0.1', `the Storage Daemon at 127.0.0.1:${client.remotePort}`));
        if (expected) await expect(started).rejects.toThrow(expected);
        else {
          await started;
          sd.write(frame('3000 OK Hello 306\n'));
          expect(await bsock.receiveText()).toBe('3000 OK Hello 306\n');
        }
      } finally {
        close();
      }
    }
  });

  it('negotiates as bacula-fd: TLS when both can, a clear refusal when one side must and the other cannot', () => {
    expect(negotiateTls(0, 0, 'x')).toBe(false);
    expect(negotiateTls(1, 0, 'x')).toBe(false);
    expect(negotiateTls(0, 1, 'x')).toBe(false);
    expect(negotiateTls(1, 1, 'x')).toBe(true);
    expect(negotiateTls(2, 1, 'x')).toBe(true);
    expect(negotiateTls(1, 2, 'x')).toBe(true);
    expect(() => negotiateTls(2, 0, 'Director "d"')).toThrow(/Director "d" does not offer TLS, and \[serve\.tls\] require = true/);
    expect(() => negotiateTls(0, 2, 'Director "d"')).toThrow(/Director "d" requires TLS: configure \[serve\.tls\]/);
  });

  it('reads the certificate files at start, with errors that name the file and the setting', () => {
    const base: TlsConfig = { enable: true, require: false, certificate: certs['agentfd-fd']!.cert, key: certs['agentfd-fd']!.key, caCertificateFile: null, verifyPeer: true, allowedCn: [] };
    expect(loadTlsSettings({ ...base, enable: false })).toBeNull();
    expect(loadTlsSettings(base)!.need).toBe(1);
    expect(loadTlsSettings({ ...base, require: true })!.need).toBe(2);
    expect(() => loadTlsSettings({ ...base, certificate: null })).toThrow(/names no certificate and key/);
    expect(() => loadTlsSettings({ ...base, caCertificateFile: path.join(dir, 'missing.crt') })).toThrow(/\[serve\.tls\] ca_certificate_file ".*missing\.crt" cannot be read/);
    const garbage = path.join(dir, 'garbage.key');
    writeFileSync(garbage, 'not a key');
    expect(() => loadTlsSettings({ ...base, key: garbage })).toThrow(/cannot be used/);
    // A key that does not belong to the certificate.
    expect(() => loadTlsSettings({ ...base, key: certs['lab-dir']!.key })).toThrow(/cannot be used/);
  });
});
