/**
 * The SQLite connection under the catalog: better-sqlite3 where its native addon is built (Linux,
 * a Windows machine with build tools), else Node's own `node:sqlite` (Node 22.13 and later). The
 * second exists for systems where no addon can be built, such as Windows Node.js running from a
 * Linux-built tree: there `node:sqlite` needs nothing native beyond node.exe. Both read and write
 * the same database file; the catalog sees only the small interface below.
 */
import { createRequire } from 'node:module';
import { AgentfdError, messageOf } from '../errors.js';

export interface SqlStatement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  /** The first column of the first row, or undefined. */
  value(...params: unknown[]): unknown;
}

export interface SqlDatabase {
  /** Which library serves it: "better-sqlite3" or "node:sqlite". */
  readonly driver: string;
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  /** Run `body` in one transaction: committed when it returns, rolled back when it throws. */
  transaction<T>(body: () => T): T;
  close(): void;
}

const require = createRequire(import.meta.url);

/** Bind parameters as both libraries take them: an array argument is spread (better-sqlite3 does this itself). */
function spread(params: unknown[]): unknown[] {
  return params.length === 1 && Array.isArray(params[0]) ? (params[0] as unknown[]) : params;
}

interface BetterStatement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  pluck(): BetterStatement;
}
interface BetterDatabase {
  exec(sql: string): void;
  prepare(sql: string): BetterStatement;
  transaction<T>(body: () => T): () => T;
  close(): void;
}

function openBetter(file: string): SqlDatabase {
  const Database = require('better-sqlite3') as new (file: string) => BetterDatabase;
  const db = new Database(file);
  return {
    driver: 'better-sqlite3',
    exec: (sql) => db.exec(sql),
    prepare(sql) {
      const statement = db.prepare(sql);
      let plucked: BetterStatement | null = null;
      return {
        run: (...params) => statement.run(...params),
        get: (...params) => statement.get(...params),
        all: (...params) => statement.all(...params),
        value: (...params) => (plucked ??= db.prepare(sql).pluck()).get(...params),
      };
    },
    transaction: (body) => db.transaction(body)(),
    close: () => db.close(),
  };
}

interface NodeStatement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Record<string, unknown>[];
}
interface NodeDatabase {
  exec(sql: string): void;
  prepare(sql: string): NodeStatement;
  close(): void;
}

/**
 * node:sqlite, without the "SQLite is an experimental feature" warning it prints on first use:
 * agentfd chose it knowingly, and a warning on every command would read as a problem.
 */
function loadNodeSqlite(): { DatabaseSync: new (file: string) => NodeDatabase } {
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes('SQLite')) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return require('node:sqlite') as { DatabaseSync: new (file: string) => NodeDatabase };
  } finally {
    process.emitWarning = emit;
  }
}

function openNodeSqlite(file: string): SqlDatabase {
  const { DatabaseSync } = loadNodeSqlite();
  const db = new DatabaseSync(file);
  let depth = 0;
  return {
    driver: 'node:sqlite',
    exec: (sql) => db.exec(sql),
    prepare(sql) {
      const statement = db.prepare(sql);
      return {
        run: (...params) => {
          const result = statement.run(...spread(params));
          return { changes: Number(result.changes), lastInsertRowid: result.lastInsertRowid };
        },
        get: (...params) => statement.get(...spread(params)),
        all: (...params) => statement.all(...spread(params)),
        value: (...params) => {
          const row = statement.get(...spread(params));
          return row === undefined ? undefined : Object.values(row)[0];
        },
      };
    },
    // Nested calls become savepoints, as better-sqlite3 does it.
    transaction(body) {
      const name = `afd_${depth}`;
      db.exec(depth === 0 ? 'BEGIN' : `SAVEPOINT ${name}`);
      depth++;
      try {
        const result = body();
        depth--;
        db.exec(depth === 0 ? 'COMMIT' : `RELEASE ${name}`);
        return result;
      } catch (error) {
        depth--;
        db.exec(depth === 0 ? 'ROLLBACK' : `ROLLBACK TO ${name}; RELEASE ${name}`);
        throw error;
      }
    },
    close: () => db.close(),
  };
}

let preferred: 'better-sqlite3' | 'node:sqlite' | null = null;

/**
 * Open (creating it if needed) the database `file`. AGENTFD_SQLITE=node:sqlite chooses Node's
 * driver even where better-sqlite3 works (the tests use it to check both).
 */
export function openDatabase(file: string): SqlDatabase {
  if (process.env.AGENTFD_SQLITE === 'node:sqlite') return openNodeSqlite(file);
  if (preferred !== 'node:sqlite') {
    try {
      const db = openBetter(file);
      preferred = 'better-sqlite3';
      return db;
    } catch (error) {
      // Only a missing or unloadable addon falls through; anything else is the file's problem.
      if (preferred === 'better-sqlite3' || !/better[-_]sqlite3|\.node|bindings|NODE_MODULE_VERSION|Could not locate/i.test(messageOf(error))) throw error;
      let nodeSqlite = true;
      try {
        loadNodeSqlite();
      } catch {
        nodeSqlite = false;
      }
      if (!nodeSqlite) {
        throw new AgentfdError(
          'E_CATALOG',
          `better-sqlite3's native addon cannot be loaded here (${messageOf(error)}), and this Node.js (${process.version}) has no node:sqlite (Node 22.13 or later has). Rebuild it with npm rebuild better-sqlite3, or use a newer Node.js.`,
          { cause: error },
        );
      }
      preferred = 'node:sqlite';
    }
  }
  return openNodeSqlite(file);
}
