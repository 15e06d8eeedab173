import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

/**
 * sd_notify for Node, which cannot send unix datagrams: spawn `systemd-notify` (never *Sync, so the
 * event loop never blocks). Does nothing unless systemd gave us NOTIFY_SOCKET. The unit needs
 * NotifyAccess=all because the message comes from a child process.
 */
export class SystemdNotifier {
  private readonly enabled: boolean;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private warned = false;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly logger: Logger,
    private readonly command = 'systemd-notify',
  ) {
    this.enabled = env.NOTIFY_SOCKET !== undefined && env.NOTIFY_SOCKET !== '';
  }

  get active(): boolean {
    return this.enabled;
  }

  send(fields: Record<string, string>): void {
    if (!this.enabled) return;
    const args = Object.entries(fields).map(([key, value]) => `${key}=${value.replace(/[\r\n]+/g, ' ')}`);
    const child = spawn(this.command, args, { stdio: 'ignore', env: this.env });
    child.on('error', (err) => {
      if (this.warned) return;
      this.warned = true;
      this.logger.warn({ err }, `cannot run ${this.command}; systemd will not see readiness or watchdog pings`);
    });
    child.unref();
  }

  ready(status: string): void {
    this.send({ READY: '1', STATUS: status });
  }

  status(status: string): void {
    // READY=1 again is harmless and covers a first notification lost to systemd-notify's exit race.
    this.send({ READY: '1', STATUS: status });
  }

  stopping(): void {
    this.stopWatchdog();
    this.send({ STOPPING: '1', STATUS: 'stopping' });
  }

  /**
   * Pings the watchdog at half of WATCHDOG_USEC while `alive()` holds. A stalled event loop stops
   * the pings by itself, which is the point.
   */
  startWatchdog(alive: () => boolean): void {
    if (!this.enabled) return;
    const usec = Number(this.env.WATCHDOG_USEC);
    const pid = this.env.WATCHDOG_PID;
    if (!Number.isFinite(usec) || usec <= 0) return;
    if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return;
    const periodMs = Math.max(1_000, Math.floor(usec / 1000 / 2));
    this.watchdogTimer = setInterval(() => {
      if (alive()) this.send({ WATCHDOG: '1' });
    }, periodMs);
    this.watchdogTimer.unref();
  }

  stopWatchdog(): void {
    if (this.watchdogTimer !== undefined) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }
}
