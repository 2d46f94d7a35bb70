/**
 * The first pass of a scan: every volume's records, to find the sessions in them (a job id, its
 * UUID, and where each part of it starts). A damaged session header or end loses that session,
 * never the rest of the volume; a volume of another repository is not scanned.
 */
import { messageOf } from '../../errors.js';
import { parseClearJson, sessionEndProblem, sessionStartProblem, type SessionEnd, type SessionStart } from '../../pipeline/records.js';
import { parseLabelPayload, readRecordsPastDamage, RecordType, type VolumeRecord } from '../../volume/index.js';

export interface FoundSession {
  jobId: number;
  uuid: string;
  placements: { label: string; path: string; firstOffset: number }[];
}

/**
 * The intact sessions in `volumes` (in set and sequence order); what is damaged goes to `errors`.
 * `repository`: the one this catalog indexes (null: the first label met decides).
 */
export async function findSessions(volumes: readonly string[], repository: string | null, errors: string[]): Promise<FoundSession[]> {
  const found = new SessionFinder(repository, errors);
  for (const volume of volumes) {
    try {
      for await (const record of readRecordsPastDamage(volume, (message) => errors.push(message))) {
        if (!found.record(volume, record)) break;
      }
    } catch (error) {
      errors.push(messageOf(error));
    }
  }
  return found.intact();
}

class SessionFinder {
  private readonly sessions = new Map<string, FoundSession>(); // by job id + uuid
  private readonly current = new Map<number, string | null>(); // session number -> uuid of the session open there (null: damaged)
  private readonly damaged = new Set<string>(); // job id + uuid of sessions whose records are not what agentfd writes

  constructor(
    // Volumes are known by their labels (agentfd-0001, ...), which every storage directory reuses:
    // volumes of another repository would take over the labels of this catalog's volumes, and its
    // jobs would then be looked for in the wrong files. One repository per catalog, as for backups.
    private scanning: string | null,
    private readonly errors: string[],
  ) {}

  /** One record of `volume`; false: the rest of this volume is not to be read. */
  record(volume: string, record: VolumeRecord): boolean {
    if (record.type === RecordType.LABEL && !this.label(volume, record)) return false;
    if (record.session === 0) return true;
    if ((record.type === RecordType.SESSION_START || record.type === RecordType.SESSION_CONTINUE) && !this.sessionStart(record)) return true;
    const uuid = this.current.get(record.session);
    if (!uuid) return true; // the rest of a session whose start is in a volume not given, or is damaged
    const key = `${record.session}/${uuid}`;
    if (record.type === RecordType.SESSION_END) {
      const problem = payloadProblem<SessionEnd>(record.payload, 'session end', sessionEndProblem);
      if (problem) {
        this.errors.push(damagedField(record, 'the session end:', problem));
        this.damaged.add(key);
      }
    }
    let found = this.sessions.get(key);
    if (!found) this.sessions.set(key, (found = { jobId: record.session, uuid, placements: [] }));
    if (!found.placements.some((p) => p.path === volume)) found.placements.push({ label: record.volume, path: volume, firstOffset: record.offset });
    return true;
  }

  intact(): FoundSession[] {
    return [...this.sessions].filter(([key]) => !this.damaged.has(key)).map(([, session]) => session);
  }

  /** A LABEL: false when the volume belongs to another repository than the one scanned. */
  private label(volume: string, record: VolumeRecord): boolean {
    const repository = parseLabelPayload({ path: volume, offset: record.offset, ordinal: 'the LABEL record' }, record.payload).repository;
    if (repository !== undefined && this.scanning !== null && repository !== this.scanning) {
      this.errors.push(
        `volume ${volume} was not scanned: it belongs to repository ${repository} (another storage directory), and this catalog indexes repository ${this.scanning}; ` +
          'volumes of different storage directories share labels, so one catalog cannot index both. Scan it into a data_dir of its own',
      );
      return false;
    }
    if (repository !== undefined) this.scanning = repository;
    return true;
  }

  /** A SESSION_START or SESSION_CONTINUE: false when its header is damaged (it loses its session, never the volume). */
  private sessionStart(record: VolumeRecord): boolean {
    let uuid = null as string | null;
    const problem = payloadProblem<SessionStart>(record.payload, 'session start', (start) => {
      uuid = start.uuid;
      return sessionStartProblem(start);
    });
    if (problem === null && uuid !== null) {
      this.current.set(record.session, uuid);
      return true;
    }
    this.errors.push(damagedField(record, 'the session header:', problem ?? 'unreadable'));
    const open = this.current.get(record.session);
    if (open && record.type === RecordType.SESSION_CONTINUE) this.damaged.add(`${record.session}/${open}`);
    this.current.set(record.session, null);
    return false;
  }
}

/** The problem of a session record's JSON payload, or null when it is what agentfd writes. */
function payloadProblem<T>(payload: Buffer, what: string, check: (value: T) => string | null): string | null {
  let value: T;
  try {
    value = parseClearJson<T>(payload, what);
  } catch {
    return 'its payload is not valid JSON';
  }
  return check(value);
}

/** A record's bytes are intact (its CRC checked) but a field of its JSON is not what agentfd writes. */
function damagedField(record: { path: string; offset: number; session: number; type: number }, what: string, problem: string): string {
  const name = record.type === RecordType.SESSION_END ? 'SESSION_END' : record.type === RecordType.SESSION_CONTINUE ? 'SESSION_CONTINUE' : 'SESSION_START';
  return `volume ${record.path} is damaged at byte ${record.offset} (the ${name} record of job ${record.session}): ${what} ${problem}; job ${record.session} was not added (the rest of the volume was scanned)`;
}
