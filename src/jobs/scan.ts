/**
 * agentfd scan: rebuild the catalog from volumes alone (Bacula's bscan). Every session found is
 * read through the session reader (metadata only: CRCs, sequence, tags, the manifest and its
 * signature are still checked) and entered with its original job id, files, agents, digests and
 * agent state. Jobs already in the catalog (same UUID) are left as they are. A session without an
 * end is entered as aborted, so nothing restores it as complete. A signature is only as good as the
 * key behind it, and anyone can make a key: a job signed by a key not among the trusted signers is
 * entered as untrusted, which restore and verify refuse (signatures.ts).
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Catalog, NewFile } from '../catalog/catalog.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import type { AccurateRecord, FileRecord, SessionEnd, SessionInfo, SessionStart } from '../pipeline/records.js';
import { readSession } from '../sink/session-reader.js';
import { parseLabelPayload, parseVolumeFileName, readRecordsPastDamage, RecordType } from '../volume/index.js';
import { isNanoseconds, parseClearJson, sessionEndProblem, sessionStartProblem } from '../pipeline/records.js';
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

/**
 * Refuses, before anything is read, a path that is not a regular file: opening a FIFO would wait
 * for a writer forever, and a device or socket is no volume.
 */
function refuseNonFiles(volumes: string[]): void {
  for (const volume of volumes) {
    let stat;
    try {
      stat = statSync(volume);
    } catch {
      continue; // a missing or unreadable file is reported when it is read, with the reader's message
    }
    if (stat.isFile()) continue;
    const kind = stat.isFIFO() ? 'a FIFO (named pipe)' : stat.isDirectory() ? 'a directory' : stat.isSocket() ? 'a socket' : stat.isCharacterDevice() || stat.isBlockDevice() ? 'a device' : 'not a regular file';
    throw new AgentfdError(
      'E_VOLUME_NOT_FILE',
      `cannot scan ${volume}: it is ${kind}, not a volume file; nothing was scanned. Give the paths of volume files (<set>-<number>.afv), e.g. agentfd scan ${path.join('STORAGE_DIR', '*.afv')}`,
    );
  }
}

/** A record's bytes are intact (its CRC checked) but a field of its JSON is not what agentfd writes. */
function damagedField(record: { path: string; offset: number; session: number; type: number }, what: string, problem: string): string {
  const name = record.type === RecordType.SESSION_END ? 'SESSION_END' : record.type === RecordType.SESSION_CONTINUE ? 'SESSION_CONTINUE' : 'SESSION_START';
  return `volume ${record.path} is damaged at byte ${record.offset} (the ${name} record of job ${record.session}): ${what} ${problem}; job ${record.session} was not added (the rest of the volume was scanned)`;
}

export async function runScan(options: { catalog: Catalog; volumes: string[]; secrets: UnwrapSecrets; trusted?: TrustedSigners }): Promise<ScanReport> {
  const { catalog } = options;
  const volumes = orderVolumes(options.volumes);
  refuseNonFiles(volumes);
  const trusted: TrustedSigners = options.trusted ?? { all: new Map(), byJob: new Map(), problems: [] };
  const report: ScanReport = { volumes, added: [], present: [], errors: [], warnings: [...trusted.problems] };
  const sessions = new Map<string, Found>(); // by job id + uuid
  const current = new Map<number, string | null>(); // session number -> uuid of the session open there (null: damaged)
  const damaged = new Set<string>(); // job id + uuid of sessions whose records are not what agentfd writes
  // Volumes are known by their labels (agentfd-0001, ...), which every storage directory reuses:
  // volumes of another repository would take over the labels of this catalog's volumes, and its
  // jobs would then be looked for in the wrong files. One repository per catalog, as for backups.
  const repositories = new Set(catalog.repositories());
  let scanning: string | null = repositories.size === 1 ? [...repositories][0]! : null;

  for (const volume of volumes) {
    try {
      for await (const record of readRecordsPastDamage(volume, (message) => report.errors.push(message))) {
        if (record.type === RecordType.LABEL) {
          const repository = parseLabelPayload({ path: volume, offset: record.offset, ordinal: 'the LABEL record' }, record.payload).repository;
          if (repository !== undefined && scanning !== null && repository !== scanning) {
            report.errors.push(
              `volume ${volume} was not scanned: it belongs to repository ${repository} (another storage directory), and this catalog indexes repository ${scanning}; ` +
                'volumes of different storage directories share labels, so one catalog cannot index both. Scan it into a data_dir of its own',
            );
            break;
          }
          if (repository !== undefined) scanning = repository;
        }
        if (record.session === 0) continue;
        if (record.type === RecordType.SESSION_START || record.type === RecordType.SESSION_CONTINUE) {
          // A damaged header loses its session, never the rest of the volume.
          let start: SessionStart | null = null;
          let problem: string | null;
          try {
            start = parseClearJson<SessionStart>(record.payload, 'session start');
            problem = sessionStartProblem(start);
          } catch {
            problem = 'its payload is not valid JSON';
          }
          if (problem || !start) {
            report.errors.push(damagedField(record, 'the session header:', problem ?? 'unreadable'));
            const open = current.get(record.session);
            if (open && record.type === RecordType.SESSION_CONTINUE) damaged.add(`${record.session}/${open}`);
            current.set(record.session, null);
            continue;
          }
          current.set(record.session, start.uuid);
        }
        const uuid = current.get(record.session);
        if (!uuid) continue; // the rest of a session whose start is in a volume not given, or is damaged
        if (record.type === RecordType.SESSION_END) {
          let problem: string | null;
          try {
            problem = sessionEndProblem(parseClearJson<SessionEnd>(record.payload, 'session end'));
          } catch {
            problem = 'its payload is not valid JSON';
          }
          if (problem) {
            report.errors.push(damagedField(record, 'the session end:', problem));
            damaged.add(`${record.session}/${uuid}`);
          }
        }
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
    if (damaged.has(`${found.jobId}/${found.uuid}`)) continue;
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
          if (!isNanoseconds(file.mtimeNs)) {
            throw new AgentfdError('E_VOLUME_CORRUPT', `the record of file ${file.fileIndex} (${file.path}) is damaged: its field "mtimeNs" is ${JSON.stringify(file.mtimeNs)}, not a time in nanoseconds`);
          }
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
