import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatBytes, formatDuration } from '../../src/util/format.js';
import type { ControlPlane } from './control-plane.js';
import type { AgentRecord, PublishedDeployment } from './types.js';

/**
 * The control plane's own page (GET / on the HTTP server): what it knows about agents,
 * deployments and artifacts, for the demo and manual work. Server-rendered; a tiny inline script
 * swaps in a fresh <main> every 2 s. No external assets, and every value is escaped: labels,
 * names and problem messages come from agents.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** A tagged template that escapes every interpolation unless it is already rendered Html. */
class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    const rendered = Array.isArray(value) ? value.map((v) => (v instanceof Html ? v.text : escapeHtml(v))).join('') : value instanceof Html ? value.text : escapeHtml(value);
    out += rendered + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

const ago = (at: number | undefined, now: number): string => (at === undefined ? 'never' : `${formatDuration(now - at)} ago`);
const short = (sha: string): string => `${sha.slice(0, 12)}…`;

function labels(agent: AgentRecord): Html {
  const entries = Object.entries(agent.labels);
  if (entries.length === 0) return html`<span class="dim">none</span>`;
  return html`${entries.map(([k, v]) => html`<span class="tag">${k}=${v}</span> `)}`;
}

/** healthy / degraded from the last heartbeat; stale when it is overdue by two intervals. */
function agentStatus(cp: ControlPlane, agent: AgentRecord, now: number): { text: string; cls: string } {
  if (agent.revoked) return { text: 'key revoked', cls: 'bad' };
  const last = agent.lastHeartbeat;
  if (last === undefined) return { text: 'no heartbeat yet', cls: 'dim' };
  const overdue = now - last.at > 2 * cp.heartbeatIntervalFor(agent.agentId) * 1000 + 5_000;
  if (overdue) return { text: `silent (${last.body.status} before)`, cls: 'bad' };
  return { text: last.body.status, cls: last.body.status === 'healthy' ? 'good' : 'warn' };
}

function agentsSection(cp: ControlPlane, now: number): Html {
  const agents = cp.agents();
  if (agents.length === 0) return html`<h2>Agents</h2><p class="dim">No agent has enrolled yet.</p>`;
  const rows = agents.map((agent) => {
    const status = agentStatus(cp, agent, now);
    const problems = agent.lastHeartbeat?.body.problems ?? [];
    const reported = agent.lastHeartbeat?.body.deployment;
    return html`<tr>
<td><b>${agent.name}</b><br><code>${agent.agentId}</code></td>
<td>${labels(agent)}</td>
<td>${agent.lastHeartbeat === undefined ? 'never' : html`${new Date(agent.lastHeartbeat.at).toISOString()}<br><span class="dim">${ago(agent.lastHeartbeat.at, now)}, #${agent.lastHeartbeat.body.sequence}, ${agent.heartbeatCount} received</span>`}</td>
<td class="${status.cls}">${status.text}</td>
<td>${problems.length === 0 ? html`<span class="dim">none</span>` : html`<ul>${problems.map((p) => html`<li><code>${p.code}</code> ${p.message}</li>`)}</ul>`}</td>
<td>${reported == null ? html`<span class="dim">none</span>` : html`<code>${reported.deployment_id}</code> ${reported.state}`}</td>
</tr>`;
  });
  return html`<h2>Agents (${agents.length})</h2>
<table><thead><tr><th>Name</th><th>Labels</th><th>Last heartbeat</th><th>Status</th><th>Problems</th><th>Active deployment (reported)</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}

function agentsIn(cp: ControlPlane, deployment: PublishedDeployment): AgentRecord[] {
  if ('agentId' in deployment.target) {
    const id = deployment.target.agentId;
    return cp.agents().filter((agent) => agent.agentId === id);
  }
  const env = deployment.target.environmentId;
  return cp.agents().filter((agent) => agent.environmentId === env);
}

function deploymentsSection(cp: ControlPlane, now: number): Html {
  const deployments = [...cp.state.deployments.values()].sort((a, b) => b.seq - a.seq);
  if (deployments.length === 0) return html`<h2>Deployments</h2><p class="dim">Nothing published.</p>`;
  const blocks = deployments.map((deployment) => {
    const target = 'agentId' in deployment.target ? `agent ${deployment.target.agentId}` : `environment ${deployment.target.environmentId}`;
    const rows = agentsIn(cp, deployment).map((agent) => {
      const state = agent.deploymentStates[deployment.deploymentId];
      const current = cp.deploymentFor(agent.agentId)?.deploymentId === deployment.deploymentId;
      const cls = state === undefined ? 'dim' : state.state === 'active' ? 'good' : state.state === 'failed' || state.state === 'rolled_back' ? 'bad' : 'warn';
      return html`<tr><td>${agent.name}</td><td class="${cls}">${state?.state ?? 'not reported'}</td>
<td>${state?.reason ?? ''}${state?.message == null ? '' : html` <span class="dim">${state.message}</span>`}</td>
<td>${state === undefined ? '' : ago(state.at, now)}</td><td>${current ? 'yes' : 'no (superseded)'}</td></tr>`;
    });
    return html`<h3><code>${deployment.deploymentId}</code> → ${target}</h3>
<p>bundle <code title="${deployment.bundleSha256}">${short(deployment.bundleSha256)}</code>, ${formatBytes(deployment.bundle.length)}, published ${ago(deployment.publishedAt, now)}${deployment.body.approval_credential === null ? '' : ', with an approval credential'}</p>
${rows.length === 0 ? html`<p class="dim">No agent in scope.</p>` : html`<table><thead><tr><th>Agent</th><th>Activation</th><th>Reason</th><th>Reported</th><th>Current target</th></tr></thead><tbody>${rows}</tbody></table>`}`;
  });
  return html`<h2>Deployments (${deployments.length})</h2>${blocks}`;
}

function artifactsSection(cp: ControlPlane, now: number): Html {
  const artifacts = [...cp.artifacts].reverse();
  if (artifacts.length === 0) return html`<h2>Artifacts</h2><p class="dim">None uploaded.</p>`;
  const names = new Map(cp.agents().map((agent) => [agent.agentId, agent.name]));
  const rows = artifacts.map(
    (a) => html`<tr><td>${a.type}</td><td>${a.filename}</td><td>${names.get(a.agentId) ?? a.agentId}</td><td>${formatBytes(a.sizeBytes)}</td>
<td><code title="${a.sha256}">${short(a.sha256)}</code></td><td>${a.dedupCount}</td><td>${ago(a.receivedAt, now)}</td></tr>`,
  );
  return html`<h2>Artifacts (${artifacts.length})</h2>
<table><thead><tr><th>Type</th><th>File</th><th>From</th><th>Size</th><th>SHA-256</th><th>Dedup hits</th><th>Received</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The part that is refreshed: everything the control plane knows, as of now. */
export function renderMain(cp: ControlPlane, now: number = cp.now()): string {
  const state = cp.state;
  const flags = [state.faults.outage ? 'OUTAGE (every API request is dropped)' : '', state.ready ? '' : 'not ready (/readyz answers 503)'].filter((f) => f !== '');
  return html`<p class="dim">As of ${new Date(now).toISOString()}: ${state.requests.length} API requests served, heartbeat interval ${state.heartbeatIntervalSeconds} s.
${flags.length === 0 ? '' : html`<span class="bad">${flags.join('; ')}</span>`}</p>
${agentsSection(cp, now)}
${deploymentsSection(cp, now)}
${artifactsSection(cp, now)}`.text;
}

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}code{font-size:12px}.dim{color:#888}.good{color:#176c2e;font-weight:600}.warn{color:#9a6700;font-weight:600}.bad{color:#b42318;font-weight:600}.tag{background:#eef;border-radius:3px;padding:0 4px;margin-right:2px;font-family:monospace;font-size:12px}ul{margin:0;padding-left:1.2em}`;
// Replaces <main> with a fresh rendering every 2 s; keeps the old one when the server is gone.
const SCRIPT = `setInterval(function(){fetch('/?part=main',{cache:'no-store'}).then(function(r){return r.ok?r.text():null}).then(function(t){if(t!==null)document.getElementById('main').innerHTML=t}).catch(function(){})},2000);`;
const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
/** Only this page's own inline style and script run; nothing is loaded from anywhere. */
const CSP = `default-src 'none'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}; connect-src 'self'; base-uri 'none'; form-action 'none'`;

export function renderPage(cp: ControlPlane, now: number = cp.now()): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ByteOr control plane (local)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style>
<noscript><meta http-equiv="refresh" content="2"></noscript>
</head><body>
<h1>ByteOr control plane <span class="dim">(local, fake)</span></h1>
<main id="main">${renderMain(cp, now)}</main>
<script>${SCRIPT}</script>
</body></html>
`;
}

/** Whether this request is for the page (GET or HEAD of /, optionally ?part=main). */
export function isPageRequest(req: IncomingMessage): boolean {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') return false;
  const path = (req.url ?? '/').split('?')[0];
  return path === '/';
}

export function servePage(cp: ControlPlane, req: IncomingMessage, res: ServerResponse): void {
  const query = new URL(req.url ?? '/', 'http://page.invalid').searchParams;
  let body: string;
  try {
    body = query.get('part') === 'main' ? renderMain(cp) : renderPage(cp);
  } catch (err) {
    // A rendering bug must show, not become an unhandled rejection in the server.
    const text = `the page failed to render: ${err instanceof Error ? err.message : String(err)}\n`;
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
