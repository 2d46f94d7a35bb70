/**
 * The one place that converts between operating-system paths and agent paths, so the backup and
 * the restore cannot disagree about the mapping.
 *
 * Agent paths are absolute and '/'-separated on every platform:
 * - POSIX: the real path, unchanged ("/home/ann/notes.txt").
 * - Windows: the drive letter becomes the first component, colon kept: `C:\a\b` -> "/C:/a/b"
 *   (the letter upper-cased); a UNC path `\\server\share\x` -> "/UNC/server/share/x".
 * On restore the agent path is placed under the target; on Windows the drive colon is dropped
 * ("/C:/x" -> `<target>\C\x`), since a colon inside a Windows path names an alternate data stream.
 */
import { AgentfdError } from '../../errors.js';
import { agentPathProblem } from '../native/validate.js';

const IS_WINDOWS = process.platform === 'win32';

/** The agent path of the absolute, normalised OS path `osPath` (see the mapping above). */
export function toAgentPath(osPath: string, windows = IS_WINDOWS): string {
  if (!windows) return osPath;
  const unc = /^[\\/]{2}([^\\/]+)[\\/]+([^\\/]+)(.*)$/.exec(osPath);
  if (unc) return `/UNC/${unc[1]}/${unc[2]}${toSlashes(unc[3] ?? '')}`;
  const drive = /^([A-Za-z]):(.*)$/.exec(osPath);
  if (!drive) throw new AgentfdError('E_AGENT_OPTION', `${osPath}: not a drive or UNC path; give paths like C:\\Users\\ann`);
  return `/${drive[1]!.toUpperCase()}:${toSlashes(drive[2] ?? '')}`;
}

function toSlashes(rest: string): string {
  const trimmed = rest.replace(/[\\/]+/g, '/').replace(/\/$/, '');
  return trimmed === '' || trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

/** The agent path of `name` inside the directory whose agent path is `parent`. */
export function childAgentPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

// Characters Windows refuses in a file name, or reads as something else (':' is a data stream).
const WINDOWS_BAD = /[<>:"|?*\u0000-\u001f]|[. ]$/;

/**
 * The components to create under the restore target for `agentPath`, or an E_RESTORE_PATH error
 * saying why the path is refused. "/" gives no components (the target itself).
 */
export function restoreComponents(agentPath: string, windows = IS_WINDOWS): string[] {
  const refuse = (why: string) =>
    new AgentfdError('E_RESTORE_PATH', `restore of ${JSON.stringify(agentPath)} refused: ${why}; nothing was written for it`);
  const problem = agentPathProblem(agentPath);
  if (problem) throw refuse(problem);
  if (agentPath === '/') return [];
  const parts = agentPath.slice(1).split('/');
  for (const part of parts) {
    if (part === '.' || part === '..' || part === '' || part.includes('\0')) throw refuse(`bad component ${JSON.stringify(part)}`);
  }
  if (windows) {
    if (/^[A-Za-z]:$/.test(parts[0]!)) parts[0] = parts[0]!.slice(0, 1);
    const bad = parts.find((p) => WINDOWS_BAD.test(p));
    if (bad !== undefined) throw refuse(`the component ${JSON.stringify(bad)} is not a valid Windows file name`);
  }
  return parts;
}

