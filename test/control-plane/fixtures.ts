import type { ArtifactMetadata, EnrollRequest, HeartbeatRequest } from '../../src/api/types.js';
import { sha256Hex } from './crypto.js';

/**
 * Valid request bodies and a multipart builder, for tests that talk to the fake with plain
 * fetch. Override what the test is about; the rest stays valid.
 */

export function sampleEnrollBody(overrides: Partial<EnrollRequest> = {}): EnrollRequest {
  return {
    name: 'edge-node-01',
    hostname: 'edge-node-01',
    os: { platform: 'linux', distro: 'Debian GNU/Linux', release: '12', kernel: '6.1.0-18-amd64' },
    arch: 'x64',
    runtime: { agent_version: '0.1.0', node_version: '20.20.2' },
    labels: { region: 'eu-west-1' },
    ...overrides,
  };
}

export function sampleHeartbeat(overrides: Partial<HeartbeatRequest> = {}): HeartbeatRequest {
  return {
    sent_at: '2026-12-04T19:40:00.000Z',
    sequence: 1,
    status: 'healthy',
    agent_version: '0.1.0',
    started_at: '2026-12-04T18:00:00.000Z',
    deployment: null,
    host: {
      hostname: 'edge-node-01',
      uptime_seconds: 86400,
      load1: 0.12,
      cpu_count: 4,
      mem_total_bytes: 8589934592,
      mem_available_bytes: 4294967296,
      disk_free_bytes: 53687091200,
    },
    outbox: { pending: 0, pending_bytes: 0, rejected: 0 },
    problems: [],
    ...overrides,
  };
}

export interface ArtifactForm {
  form: FormData;
  /** Typed as valid metadata, though overrides may have made it deliberately invalid. */
  metadata: ArtifactMetadata;
}

/** An artifact upload as the agent sends it: `metadata` (JSON) then `file`. */
export function artifactForm(file: Uint8Array | string, metadata: Partial<Record<keyof ArtifactMetadata, unknown>> & Record<string, unknown> = {}): ArtifactForm {
  const bytes = Buffer.from(file);
  const meta = {
    type: 'incident_bundle',
    sha256: sha256Hex(bytes),
    size_bytes: bytes.length,
    captured_at: '2026-12-04T19:40:00.000Z',
    filename: 'incident-2026-12-04T19-40-00Z.tar.gz',
    labels: { trigger: 'watchdog' },
    ...metadata,
  };
  const form = new FormData();
  form.append('metadata', new Blob([JSON.stringify(meta)], { type: 'application/json' }));
  form.append('file', new Blob([bytes], { type: 'application/gzip' }), String(meta.filename));
  return { form, metadata: meta as ArtifactMetadata };
}
