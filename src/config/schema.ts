/**
 * The shape of agentfd.toml. TOML because it is what administrators of daemons already edit by
 * hand (comments, no significant indentation, tables per job), and zod because it checks the
 * parsed tree and says precisely which key is wrong. Unknown keys are errors: a misspelt key that
 * is silently ignored is a backup that silently does not happen.
 */
import { z } from 'zod';

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Option values reach agents as strings (get_option); TOML scalars are accepted and converted. */
const optionValue = z.union([z.string(), z.number(), z.boolean()]).transform((value) => String(value));

const glob = z.string().min(1, 'a glob cannot be empty');

export const jobSchema = z.strictObject({
  agent: z.string().min(1, 'name the agent by its Name(), e.g. agent = "MicrosoftExchange"'),
  description: z.string().optional(),
  include: z.array(glob).optional(),
  exclude: z.array(glob).optional(),
  options: z.record(z.string(), optionValue).default({}),
});

export const agentSettingsSchema = z.strictObject({
  options: z.record(z.string(), optionValue).default({}),
});

export const configSchema = z.strictObject({
  plugin_dir: z.string().min(1).optional(),
  data_dir: z.string().min(1).optional(),
  agents: z.record(z.string(), agentSettingsSchema).default({}),
  jobs: z
    .record(z.string().regex(JOB_NAME, 'a job name is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit'), jobSchema)
    .default({}),
});

export type RawConfig = z.infer<typeof configSchema>;
export type JobConfig = z.infer<typeof jobSchema>;
