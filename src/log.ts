import pino, { type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

const SECRET_KEYS = [
  'authorization',
  'Authorization',
  'apiKey',
  'api_key',
  'token',
  'enrollmentToken',
  'enrollment_token',
  'password',
  'secret',
  'BYTEOR_AGENT_API_KEY',
  'BYTEOR_ENROLLMENT_TOKEN',
];

/** pino's redact wildcards match one level only, so every depth we log at is listed. */
export function redactPaths(maxDepth = 4): string[] {
  const paths: string[] = [];
  for (const key of SECRET_KEYS) {
    paths.push(key);
    let prefix = '*';
    for (let depth = 1; depth < maxDepth; depth += 1) {
      paths.push(`${prefix}.${key}`);
      prefix += '.*';
    }
  }
  return paths;
}

const knownSecrets = new Set<string>();

/**
 * Secrets the process holds (runtime key, enrollment token). Any log text that contains one
 * verbatim is scrubbed, as a second line of defence behind never logging them at all.
 */
export function registerSecret(value: string | undefined): void {
  if (value !== undefined && value.length >= 8) knownSecrets.add(value);
}

const BEARER = /\b(Bearer)\s+[A-Za-z0-9._~+/=-]+/gi;
// A key's public prefix (byk_live_) alone is no secret and names the key kind in hints.
const KEY_LIKE = /\bbyk_(?:[a-z]+_)?[A-Za-z0-9_-]{12,}/g;

/** Removes anything that looks like a credential from free text (messages, stacks, server replies). */
export function scrubSecrets(text: string): string {
  let out = text.replace(BEARER, '$1 [REDACTED]').replace(KEY_LIKE, 'byk_[REDACTED]');
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join('[REDACTED]');
  }
  return out;
}

function scrubDeep(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  // Errors keep their message and stack (not enumerable) by going through the serializer.
  if (value instanceof Error) return scrubDeep(pino.stdSerializers.err(value), depth + 1);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubDeep(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrubDeep(item, depth + 1);
  return out;
}

function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return scrubDeep(err, 0);
  return scrubDeep(pino.stdSerializers.err(err), 0);
}

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where JSON lines go; stdout (fd 1, synchronous, so nothing is lost on exit) when omitted. */
  destination?: DestinationStream;
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level ?? 'info',
      base: options.base ?? { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths(), censor: '[REDACTED]' },
      serializers: { err: serializeError, error: serializeError },
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrubDeep(object, 0) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg));
          method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}
