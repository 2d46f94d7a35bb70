/**
 * Which names Windows cannot hold as one path component: the facts behind the filesystem agent's
 * name mapping (src/agents/filesystem/agent-path.ts, which writes such names escaped) and behind
 * the refusal of such a component by confined restore writes (pinned-target.ts), kept in one place.
 */

/** Characters a Windows name cannot hold (':' would name a data stream; '\' and '/' separate). */
export const WINDOWS_FORBIDDEN = /[<>:"|?*\\\u0001-\u001f]/g;
/** Device names, compared with the part of a name before its first '.', trailing spaces ignored. */
export const RESERVED_DEVICE = /^(?:CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])$/i;

/** The part of `name` that Windows compares with the device names. */
export function deviceBase(name: string): string {
  const dot = name.indexOf('.');
  return (dot === -1 ? name : name.slice(0, dot)).replace(/ +$/, '');
}

/** Whether Windows cannot hold `name` as it is: a forbidden character, a trailing dot or space, a device name. */
export function windowsCannotHold(name: string): boolean {
  WINDOWS_FORBIDDEN.lastIndex = 0;
  if (WINDOWS_FORBIDDEN.test(name)) return true;
  if (name.endsWith('.') || name.endsWith(' ')) return true;
  return RESERVED_DEVICE.test(deviceBase(name));
}
