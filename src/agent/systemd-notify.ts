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

  /** Resolves when the notification has been handed over (or could not be); never rejects. */
  send(fields: Record<string, string>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const args = Object.entries(fields).map(([key, value]) => `${key}=${value.replace(/[\r\n]+/g, ' ')}`);
    return new Promise((resolve) => {
      const child = spawn(this.command, args, { stdio: 'ignore', env: this.env });
      child.on('error', (err) => {
        if (!this.warned) {
          this.warned = true;
          this.logger.warn({ err }, `cannot run ${this.command}; systemd will not see readiness or watchdog pings`);
        }
        resolve();
      });
      child.on('exit', () => resolve());
      child.unref();
    });
  }

  ready(status: string): Promise<void> {
    return this.send({ READY: '1', STATUS: status });
  }

  status(status: string): Promise<void> {
    // READY=1 again is harmless and covers a first notification lost to systemd-notify's exit race.
    return this.send({ READY: '1', STATUS: status });
  }

  stopping(): Promise<void> {
    this.stopWatchdog();
    return this.send({ STOPPING: '1', STATUS: 'stopping' });
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
      if (alive()) void this.send({ WATCHDOG: '1' });
    }, periodMs);
    this.watchdogTimer.unref();
  }

  stopWatchdog(): void {
    if (this.watchdogTimer !== undefined) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }
}
