/** agentfd's version, as negotiate requests and volume labels report it. Kept in step with package.json by a test. */
export const HOST_VERSION = '0.1.0';
