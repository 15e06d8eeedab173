import { setupServer, type SetupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { ControlPlane, type ControlPlaneOptions } from './control-plane.js';
import { createHandlers } from './handlers.js';

export interface SetupControlPlaneOptions extends ControlPlaneOptions {
  /** Default https://api.byteor.test (never leaves the process); may carry a path prefix. */
  baseUrl?: string;
  /** Default true: cp.reset() before each test, so no test sees another's state. */
  resetBetweenTests?: boolean;
}

export interface ControlPlaneHarness {
  /** The same instance for the whole file (safe to destructure); its state is fresh per test. */
  cp: ControlPlane;
  baseUrl: string;
  /** The msw server, for `server.use(...)` overrides in a single test (reset after each). */
  server: SetupServer;
}

export const DEFAULT_BASE_URL = 'https://api.byteor.test';

/**
 * Registers the fake control plane for the calling test file: msw intercepts the global fetch,
 * unhandled requests fail the test (no traffic leaves the process), and the state is reset
 * before each test. Call at the top level of a test file (or of a describe block).
 */
export function setupControlPlane(options: SetupControlPlaneOptions = {}): ControlPlaneHarness {
  const { baseUrl = DEFAULT_BASE_URL, resetBetweenTests = true, ...cpOptions } = options;
  const cp = new ControlPlane(cpOptions);
  const server = setupServer(...createHandlers(cp, { baseUrl }));
  beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
  if (resetBetweenTests) beforeEach(() => cp.reset());
  // Drops per-test server.use() overrides; the control plane's own handlers are the initial ones and stay.
  afterEach(() => server.resetHandlers());
  afterAll(() => server.close());
  return { cp, baseUrl, server };
}
