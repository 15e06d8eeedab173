import os from 'node:os';
import si from 'systeminformation';
import type { HostOs } from '../api/types.js';
import { AGENT_VERSION } from '../version.js';
import { withTimeout } from './with-timeout.js';

export interface HostMetadata {
  hostname: string;
  os: HostOs;
  arch: string;
  runtime: { agent_version: string; node_version: string };
}

/** osInfo() takes ~45 ms (it reads /etc/os-release and runs uname); fine once per process. */
const OS_INFO_TIMEOUT_MS = 2_000;

function osFallback(): HostOs {
  return { platform: os.platform(), distro: 'unknown', release: 'unknown', kernel: os.release() };
}

let cached: Promise<HostMetadata> | undefined;

/** Static facts about the host, for enrollment and snapshots; computed once and cached. */
export function hostMetadata(): Promise<HostMetadata> {
  cached ??= (async () => {
    const info = await withTimeout(
      si.osInfo().then((o): HostOs => ({
        platform: o.platform || os.platform(),
        distro: o.distro || 'unknown',
        release: o.release || 'unknown',
        kernel: o.kernel || os.release(),
      })),
      OS_INFO_TIMEOUT_MS,
      osFallback,
    );
    return {
      hostname: os.hostname(),
      os: info,
      arch: process.arch,
      runtime: { agent_version: AGENT_VERSION, node_version: process.versions.node },
    };
  })();
  return cached;
}
