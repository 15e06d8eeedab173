import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';

/** A pino destination that keeps every JSON line, for asserting on what was (not) logged. */
export class LogCapture implements DestinationStream {
  readonly lines: string[] = [];

  write(line: string): void {
    for (const part of line.split('\n')) if (part.trim() !== '') this.lines.push(part);
  }

  get records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  text(): string {
    return this.lines.join('\n');
  }

  /** A Writable view, for APIs that want a stream. */
  stream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        this.write(chunk.toString('utf8'));
        done();
      },
    });
  }
}
