/**
 * agentfd scan: rebuild the catalog from volumes alone (Bacula's bscan). Every session found is
 * read through the session reader (metadata only: CRCs, sequence, tags, the manifest and its
 * signature are still checked) and entered with its original job id, files, agents, digests and
 * agent state. Jobs already in the catalog (same UUID) are left as they are. A session without an
 * end is entered as aborted, so nothing restores it as complete. A signature is only as good as the
 * key behind it, and anyone can make a key: a job signed by a key not among the trusted signers is
 * entered as untrusted, which restore and verify refuse (signatures.ts).
 */
import path from 'node:path';
import type { Catalog, NewFile } from '../catalog/catalog.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import type { FileRecord, SessionEnd, SessionInfo, SessionStart } from '../pipeline/records.js';
import type { AccurateRecord } from './accurate.js';
import { readSession } from '../sink/session-reader.js';
import { parseVolumeFileName, readRecords, RecordType } from '../volume/index.js';
import { parseClearJson } from '../pipeline/records.js';
import { isTrusted, type TrustedSigners } from './signatures.js';

export interface ScanReport {
  volumes: string[];
  added: { jobId: number; name: string; status: string; files: number }[];
  present: number[];
  errors: string[];
  /** Jobs entered but not to be trusted as they are (signed by a key not trusted). */
  warnings: string[];
}

interface Found {
  jobId: number;
  uuid: string;
  placements: { label: string; path: string; firstOffset: number }[];
}

/** Volumes in set and sequence order, so sessions that span volumes are read in order. */
function orderVolumes(files: string[]): string[] {
  return [...files].map((f) => path.resolve(f)).sort((a, b) => {
    const pa = parseVolumeFileName(path.basename(a));
    const pb = parseVolumeFileName(path.basename(b));
    if (pa && pb && pa.set === pb.set) return pa.sequence - pb.sequence;
    return a.localeCompare(b);
  });
}

export async function runScan(options: { catalog: Catalog; volumes: string[]; secrets: UnwrapSecrets; trusted?: TrustedSigners }): Promise<ScanReport> {
  const { catalog } = options;
  const volumes = orderVolumes(options.volumes);
  const trusted: TrustedSigners = options.trusted ?? { all: new Map(), byJob: new Map(), problems: [] };
  const report: ScanReport = { volumes, added: [], present: [], errors: [], warnings: [...trusted.problems] };
  const sessions = new Map<string, Found>(); // by job id + uuid
  const current = new Map<number, string>(); // session number -> uuid of the session open there

  for (const volume of volumes) {
    try {
      for await (const record of readRecords(volume)) {
        if (record.session === 0) continue;
        if (record.type === RecordType.SESSION_START || record.type === RecordType.SESSION_CONTINUE) {
          const start = parseClearJson<SessionStart>(record.payload, 'session start');
          current.set(record.session, start.uuid);
        }
        const uuid = current.get(record.session);
        if (!uuid) continue; // the rest of a session whose start is in a volume not given
        const key = `${record.session}/${uuid}`;
        let found = sessions.get(key);
        if (!found) sessions.set(key, (found = { jobId: record.session, uuid, placements: [] }));
        if (!found.placements.some((p) => p.path === volume)) found.placements.push({ label: record.volume, path: volume, firstOffset: record.offset });
      }
    } catch (error) {
      report.errors.push(messageOf(error));
    }
  }

  for (const found of sessions.values()) {
    if (catalog.jobByUuid(found.uuid)) {
      report.present.push(found.jobId);
      continue;
    }
    const clash = catalog.job(found.jobId);
    if (clash) {
      report.errors.push(`job ${found.jobId} (${found.uuid}) in the volumes has the id of another job in the catalog (${clash.uuid}); scan into an empty data directory to rebuild this catalog`);
      continue;
    }
    let start: SessionStart | null = null;
    let info: SessionInfo | null = null;
    let end: SessionEnd | null = null;
    let verifiedSigner: string | null = null;
    let state: Buffer | null = null;
    const files: NewFile[] = [];
    let file: FileRecord | null = null;
    let streams: NewFile['streams'] = [];
    let error: string | null = null;
    let accurate: AccurateRecord = { deleted: [], renamed: [] };
    try {
      for await (const event of readSession({ jobId: found.jobId, placements: found.placements, secrets: options.secrets, data: false, what: `job ${found.jobId}` })) {
        if (event.kind === 'start') start = event.start;
        else if (event.kind === 'info') info = event.info;
        else if (event.kind === 'file') {
          file = event.file;
          streams = [];
        } else if (event.kind === 'streamEnd' && file) {
          const s = file.streams[event.end.streamIndex]!;
          streams.push({ index: s.index, name: s.name, type: s.type, rawRestorable: s.rawRestorable, bytes: event.end.bytes, sha256: event.end.sha256 });
        } else if (event.kind === 'fileEnd' && file) {
          files.push({
            fileIndex: file.fileIndex, path: file.path, kind: file.kind, mode: file.mode, mtimeNs: BigInt(file.mtimeNs), size: file.size,
            seen: file.seen, linkTarget: file.linkTarget, agent: file.agent.name, agentVersion: file.agent.version, agentAbi: file.agent.abi,
            status: event.end.status, error: event.end.error, streams, winAttributes: file.winAttributes,
          });
          file = null;
        } else if (event.kind === 'accurate') {
          accurate = event.record;
        } else if (event.kind === 'state') state = event.blob;
        else if (event.kind === 'end') {
          end = event.end;
          verifiedSigner = event.signer;
        }
      }
    } catch (e) {
      if (e instanceof AgentfdError && e.code === 'E_WRONG_KEY') {
        report.errors.push(`job ${found.jobId} is encrypted and was not added: ${e.message}`);
        continue;
      }
      error = messageOf(e);
      report.errors.push(`job ${found.jobId}: ${error}`);
    }
    if (!start) continue;
    const status = end ? end.status : 'aborted';
    // Without an end the signature was not checked: the signer named is recorded, untrusted (the job
    // is aborted then, which restore refuses anyway, and the error says why).
    const signer = end ? verifiedSigner : start.signer?.fingerprint ?? null;
    const name = info?.jobName ?? '(unknown)';
    const signerTrusted = signer === null || (end !== null && isTrusted(trusted, name, signer));
    if (!signerTrusted && end !== null) {
      report.warnings.push(
        `job ${found.jobId} (${name}) is signed by ${signer}, which is not a trusted signer: it is entered as untrusted, and restore and verify refuse it. ` +
          'If the key is yours, scan into an empty data directory with --trust-signer FILE.pub (or trusted_signers in the configuration)',
      );
    }
    catalog.transaction(() => {
      catalog.createJob({
        id: found.jobId, uuid: found.uuid, name: info?.jobName ?? '(unknown)', agent: info?.agent.name ?? '(unknown)',
        agentVersion: info?.agent.version ?? null, agentAbi: info?.agent.abi ?? 0, level: start!.level, requestedLevel: info?.requestedLevel ?? start!.level,
        referenceJob: info?.referenceJob?.id ?? null, startedNs: BigInt(start!.startedNs), compression: start!.compression, cipher: start!.cipher,
        signer, signerTrusted,
      });
      const fileCount = files.length;
      accurate.deleted.forEach((gone, i) =>
        files.push({
          fileIndex: fileCount + i, path: gone.path, kind: gone.kind, mode: 0, mtimeNs: 0n, size: null, seen: false, linkTarget: null,
          agent: info?.agent.name ?? '(unknown)', agentVersion: info?.agent.version ?? null, agentAbi: info?.agent.abi ?? 0, status: 'deleted', error: null, streams: [],
        }),
      );
      catalog.insertFiles(found.jobId, files);
      for (const r of accurate.renamed) catalog.setRenamedFrom(found.jobId, r.to, r.from);
      for (const p of found.placements) catalog.addJobVolume(found.jobId, p.label, p.path, p.firstOffset);
      catalog.finishJob(found.jobId, {
        status, endedNs: BigInt(end?.endedNs ?? start!.startedNs), files: fileCount, bytes: end?.bytes ?? 0, storedBytes: end?.storedBytes ?? 0,
        error: end?.error ?? error ?? (end ? null : 'the session has no end (the job was interrupted)'), state, level: info?.deliveredLevel,
      });
    });
    report.added.push({ jobId: found.jobId, name: info?.jobName ?? '(unknown)', status, files: files.length });
  }
  return report;
}
