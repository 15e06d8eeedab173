import { ARTIFACT_TYPES, FAILURE_REASONS } from '../../src/api/types.js';

/**
 * Request-body checks, strict on purpose: the fake is where a client that drifts from API.md
 * gets caught, so it rejects what a real control plane might tolerate. Each returns the problem
 * (a message naming the field) or undefined.
 */

type Obj = Record<string, unknown>;

export const isObj = (value: unknown): value is Obj => value !== null && typeof value === 'object' && !Array.isArray(value);
const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
const isCount = (value: unknown): boolean => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const isFiniteNumber = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
const isIsoTime = (value: unknown): boolean => typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value));

export const LABEL_KEY = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const SHA256_HEX = /^[0-9a-f]{64}$/;
export const DEPLOYMENT_STATES = ['downloading', 'verifying', 'active', 'failed', 'rolled_back'] as const;

export function labelsProblem(labels: unknown, field = 'labels'): string | undefined {
  if (!isObj(labels)) return `${field} must be an object of strings`;
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY.test(key)) return `${field} key ${JSON.stringify(key)} must match ${LABEL_KEY.source}`;
    if (typeof value !== 'string') return `${field}.${key} must be a string`;
    if (value.length > 256) return `${field}.${key} is longer than 256 characters`;
  }
  return undefined;
}

/** API.md §1. Only hostname is required; the host metadata is type-checked when present. */
export function enrollBodyProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'the body must be a JSON object';
  if (!isNonEmptyString(body.hostname) || body.hostname.length > 253) return 'hostname must be a non-empty string of at most 253 characters';
  if (body.name !== undefined && (!isNonEmptyString(body.name) || body.name.length > 128)) return 'name must be a non-empty string of at most 128 characters';
  if (body.os !== undefined) {
    if (!isObj(body.os)) return 'os must be an object';
    for (const key of ['platform', 'distro', 'release', 'kernel']) {
      if (body.os[key] !== undefined && typeof body.os[key] !== 'string') return `os.${key} must be a string`;
    }
  }
  if (body.arch !== undefined && typeof body.arch !== 'string') return 'arch must be a string';
  if (body.runtime !== undefined) {
    if (!isObj(body.runtime)) return 'runtime must be an object';
    for (const key of ['agent_version', 'node_version']) {
      if (body.runtime[key] !== undefined && typeof body.runtime[key] !== 'string') return `runtime.${key} must be a string`;
    }
  }
  if (body.labels !== undefined) return labelsProblem(body.labels);
  return undefined;
}

/** API.md §2, including "degraded when problems is not empty" (enforced both ways). */
export function heartbeatBodyProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'the body must be a JSON object';
  if (!isIsoTime(body.sent_at)) return 'sent_at must be an ISO 8601 time';
  if (!isCount(body.sequence)) return 'sequence must be a non-negative integer';
  if (body.status !== 'healthy' && body.status !== 'degraded') return 'status must be healthy or degraded';
  if (!isNonEmptyString(body.agent_version)) return 'agent_version must be a non-empty string';
  if (!isIsoTime(body.started_at)) return 'started_at must be an ISO 8601 time';
  if (body.deployment !== null) {
    const dep = body.deployment;
    if (!isObj(dep)) return 'deployment must be null or an object';
    if (!isNonEmptyString(dep.deployment_id)) return 'deployment.deployment_id must be a non-empty string';
    if (typeof dep.bundle_sha256 !== 'string' || !SHA256_HEX.test(dep.bundle_sha256)) return 'deployment.bundle_sha256 must be 64 lowercase hex digits';
    if (!(DEPLOYMENT_STATES as readonly unknown[]).includes(dep.state)) return `deployment.state must be one of ${DEPLOYMENT_STATES.join(', ')}`;
  }
  const host = body.host;
  if (!isObj(host)) return 'host must be an object';
  if (!isNonEmptyString(host.hostname)) return 'host.hostname must be a non-empty string';
  for (const key of ['uptime_seconds', 'load1', 'cpu_count', 'mem_total_bytes', 'mem_available_bytes', 'disk_free_bytes']) {
    if (!isFiniteNumber(host[key]) || (host[key] as number) < 0) return `host.${key} must be a non-negative number`;
  }
  const outbox = body.outbox;
  if (!isObj(outbox)) return 'outbox must be an object';
  for (const key of ['pending', 'pending_bytes', 'rejected']) {
    if (!isCount(outbox[key])) return `outbox.${key} must be a non-negative integer`;
  }
  if (!Array.isArray(body.problems)) return 'problems must be an array';
  for (const [i, problem] of body.problems.entries()) {
    if (!isObj(problem) || !isNonEmptyString(problem.code) || typeof problem.message !== 'string') return `problems[${i}] must be {code, message}`;
  }
  if (body.problems.length > 0 && body.status !== 'degraded') return 'status must be degraded when problems is not empty';
  if (body.problems.length === 0 && body.status !== 'healthy') return 'status must be healthy when problems is empty';
  return undefined;
}

/** API.md §4 status report. `reason` is required for failed, and null (or absent) otherwise… */
export function statusBodyProblem(body: unknown): { code: string; message: string } | undefined {
  const invalid = (message: string): { code: string; message: string } => ({ code: 'invalid_body', message });
  if (!isObj(body)) return invalid('the body must be a JSON object');
  if (!(DEPLOYMENT_STATES as readonly unknown[]).includes(body.state)) return { code: 'invalid_state', message: `state must be one of ${DEPLOYMENT_STATES.join(', ')}` };
  if (typeof body.bundle_sha256 !== 'string' || !SHA256_HEX.test(body.bundle_sha256)) return invalid('bundle_sha256 must be 64 lowercase hex digits');
  if (!isIsoTime(body.reported_at)) return invalid('reported_at must be an ISO 8601 time');
  const reason = body.reason ?? null;
  if (reason !== null && !(FAILURE_REASONS as readonly unknown[]).includes(reason)) return { code: 'invalid_reason', message: `reason must be null or one of ${FAILURE_REASONS.join(', ')}` };
  // …except rolled_back, which may name why (the failure that caused the rollback).
  if (body.state === 'failed' && reason === null) return { code: 'invalid_reason', message: 'a failed report must carry a reason' };
  if (reason !== null && body.state !== 'failed' && body.state !== 'rolled_back') return { code: 'invalid_reason', message: `reason must be null for state ${String(body.state)}` };
  if (body.message !== undefined && body.message !== null && typeof body.message !== 'string') return invalid('message must be null or a string');
  return undefined;
}

/** API.md §6 metadata part. The type check comes first so it gets its own code. */
export function artifactMetadataProblem(metadata: unknown): { code: string; message: string } | undefined {
  const invalid = (message: string): { code: string; message: string } => ({ code: 'invalid_metadata', message });
  if (!isObj(metadata)) return invalid('the metadata part must be a JSON object');
  if (!(ARTIFACT_TYPES as readonly unknown[]).includes(metadata.type)) {
    return { code: 'unknown_type', message: `unknown artifact type ${JSON.stringify(metadata.type)}; expected one of ${ARTIFACT_TYPES.join(', ')}` };
  }
  if (typeof metadata.sha256 !== 'string' || !SHA256_HEX.test(metadata.sha256)) return invalid('sha256 must be 64 lowercase hex digits');
  if (!isCount(metadata.size_bytes)) return invalid('size_bytes must be a non-negative integer');
  if (!isIsoTime(metadata.captured_at)) return invalid('captured_at must be an ISO 8601 time');
  if (!isNonEmptyString(metadata.filename) || metadata.filename.length > 255 || /[/\\\0]/.test(metadata.filename)) return invalid('filename must be a plain file name');
  if (metadata.labels !== undefined) {
    const problem = labelsProblem(metadata.labels);
    if (problem !== undefined) return invalid(problem);
  }
  return undefined;
}
