/**
 * TLS as Bacula 9.6 daemons speak it (lib/tls.c, filed/authenticate.c): each side says in its
 * CRAM-MD5 challenge how much it wants TLS (ssl=0 no, 1 can, 2 must); when both can, TLS starts on
 * the same socket right after authentication. The File Daemon is the TLS server towards a Director
 * and the TLS client towards a Storage Daemon. TLS-PSK does not exist in 9.6: certificates only.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { TlsConfig } from '../../config/load.js';
import { AgentfdError, messageOf } from '../../errors.js';

/** How much a side wants TLS, as the ssl= value of its challenge. */
export const TLS_NEED = { none: 0, ok: 1, required: 2 } as const;
export type TlsNeed = 0 | 1 | 2;

/** What [serve.tls] configures, with the files read (paths are for messages). */
export interface TlsSettings {
  need: TlsNeed;
  /** Directors must present a certificate signed by the CA (TLS Verify Peer; Bacula's default for servers). */
  verifyPeer: boolean;
  /** If not empty, a Director's certificate must name one of these (CN or a DNS subjectAltName). */
  allowedCn: string[];
  context: tls.SecureContext;
  /** The same certificate, key and CAs, for the (never listening) tls.Server of Director connections. */
  pem: { cert: Buffer; key: Buffer; ca?: Buffer };
  certificateFile: string;
}

/** A failed negotiation or handshake: the job's connection ends, with what to change. */
function tlsError(message: string, cause?: unknown): AgentfdError {
  return new AgentfdError('E_BACULA_TLS', message, cause === undefined ? undefined : { cause });
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new AgentfdError('E_CONFIG', `[serve.tls] ${what} "${file}" cannot be read: ${messageOf(error)}`);
  }
}

/** The TLS settings of `agentfd serve`, or null when TLS is off. Reads and checks the files now, at start. */
export function loadTlsSettings(config: TlsConfig): TlsSettings | null {
  if (!config.enable && !config.require) return null;
  if (!config.certificate || !config.key) {
    throw new AgentfdError('E_CONFIG', '[serve.tls] enables TLS but names no certificate and key: set certificate = "fd.crt" and key = "fd.key" (a File Daemon is a TLS server towards its Directors)');
  }
  const pem = {
    cert: readPem(config.certificate, 'certificate'),
    key: readPem(config.key, 'key'),
    ...(config.caCertificateFile ? { ca: readPem(config.caCertificateFile, 'ca_certificate_file') } : {}),
  };
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext(pem);
  } catch (error) {
    if (error instanceof AgentfdError) throw error;
    throw new AgentfdError('E_CONFIG', `[serve.tls] certificate "${config.certificate}" and key "${config.key}" cannot be used: ${messageOf(error)}`);
  }
  return {
    need: config.require ? TLS_NEED.required : TLS_NEED.ok,
    verifyPeer: config.verifyPeer,
    allowedCn: config.allowedCn,
    context,
    pem,
    certificateFile: config.certificate,
  };
}

/**
 * Whether TLS starts, from both sides' ssl= values; throws when one side must have TLS and the other
 * cannot (bacula-fd refuses then too).
 */
export function negotiateTls(local: TlsNeed, remote: number, peer: string): boolean {
  if (local === TLS_NEED.required && remote < TLS_NEED.ok) {
    throw tlsError(`${peer} does not offer TLS, and [serve.tls] require = true: enable TLS on its side (TLS Enable = yes) or set require = false`);
  }
  if (remote >= TLS_NEED.required && local < TLS_NEED.ok) {
    throw tlsError(`${peer} requires TLS: configure [serve.tls] with enable = true, certificate, key and ca_certificate_file`);
  }
  return local >= TLS_NEED.ok && remote >= TLS_NEED.ok;
}

/** The names a certificate is issued to: its CN and DNS subjectAltNames. */
function certificateNames(socket: tls.TLSSocket): string[] {
  const certificate = socket.getPeerCertificate();
  const names: string[] = [];
  const cn = certificate.subject?.CN;
  if (cn) names.push(...(Array.isArray(cn) ? cn : [cn]));
  for (const entry of (certificate.subjectaltname ?? '').split(/,\s*/)) if (entry.startsWith('DNS:')) names.push(entry.slice(4));
  return names;
}

const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Waits for `event` on a TLS socket, failing on error, close or timeout. */
function handshake(socket: tls.TLSSocket, event: 'secureConnect', peer: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`)), HANDSHAKE_TIMEOUT_MS);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off(event, done);
      socket.off('error', fail);
      socket.off('close', closed);
    };
    const done = () => {
      cleanup();
      resolve(socket);
    };
    const fail = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(tlsError(`TLS handshake with ${peer} failed: ${error.message}`, error));
    };
    const closed = () => fail(new Error('the connection closed during the handshake'));
    socket.once(event, done);
    socket.once('error', fail);
    socket.once('close', closed);
  });
}

/**
 * TLS towards a Director: we are the server; with verify_peer its certificate must check out. The
 * socket goes through a tls.Server (never listening) because only a server's sockets get their
 * client certificate's verdict (`authorized`); the verdict is checked here, to say why.
 */
export async function tlsServer(raw: Duplex, settings: TlsSettings, peer: string): Promise<tls.TLSSocket> {
  // One server per handshake, so its events are this connection's (a Director connection is rare enough).
  const server = tls.createServer({ ...settings.pem, requestCert: settings.verifyPeer, rejectUnauthorized: false });
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`)), HANDSHAKE_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      raw.destroy();
      reject(tlsError(`TLS handshake with ${peer} failed: ${error.message}`, error));
    };
    server.once('tlsClientError', fail);
    raw.once('close', () => fail(new Error('the connection closed during the handshake')));
    server.once('secureConnection', (secure: tls.TLSSocket) => {
      clearTimeout(timer);
      resolve(secure);
    });
    server.emit('connection', raw);
  });
  if (settings.verifyPeer && !socket.authorized) {
    socket.destroy();
    const why = socket.authorizationError ? String(socket.authorizationError) : 'no certificate';
    throw tlsError(`TLS handshake with ${peer} failed: its certificate was not accepted (${why}); it needs one signed by [serve.tls] ca_certificate_file, or set verify_peer = false`);
  }
  if (settings.verifyPeer && settings.allowedCn.length > 0) {
    const names = certificateNames(socket);
    if (!names.some((name) => settings.allowedCn.includes(name))) {
      socket.destroy();
      throw tlsError(`${peer} presented a certificate for ${names.join(', ') || 'no name'}, which [serve.tls] allowed_cn (${settings.allowedCn.join(', ')}) does not list`);
    }
  }
  return socket;
}

/**
 * TLS towards a Storage Daemon: we are the client and, as bacula-fd, always check its certificate
 * against the CA and the address the Director gave.
 */
export async function tlsClient(raw: Duplex, settings: TlsSettings, host: string, peer: string): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    socket: raw as net.Socket,
    secureContext: settings.context,
    host,
    ...(net.isIP(host) ? {} : { servername: host }),
    rejectUnauthorized: true,
  });
  return handshake(socket, 'secureConnect', peer);
}
