import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeArtifactForm } from '../../src/api/multipart.js';
import { FileChangedError, fileSource } from '../../src/agent/outbox/file-source.js';
import { multipartBoundary, parseMultipart, type MultipartPart } from '../control-plane/multipart.js';
import { tempDir } from '../support/tmp.js';

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('encodeArtifactForm', () => {
  it('writes metadata then file as multipart/form-data, exactly as long as it declares', async () => {
    const file = new Blob(['0123456789'], { type: 'application/gzip' });
    const form = encodeArtifactForm('{"type":"snapshot"}', file, 'we"ird\nname.tar.gz');
    const bytes = await collect(form.body);
    expect(bytes.length).toBe(form.contentLength);
    const parts: (MultipartPart & { data: string })[] = [];
    await parseMultipart(new Blob([bytes]).stream(), multipartBoundary(form.contentType)!, {
      onPart: (part) => void parts.push({ ...part, data: '' }),
      onData: (chunk) => {
        parts.at(-1)!.data += Buffer.from(chunk).toString('utf8');
      },
      onPartEnd: () => undefined,
    }, { maxBytes: 1 << 20 });
    expect(parts).toEqual([
      { name: 'metadata', filename: undefined, contentType: 'application/json', data: '{"type":"snapshot"}' },
      { name: 'file', filename: 'we%22ird%0Aname.tar.gz', contentType: 'application/gzip', data: '0123456789' },
    ]);
  });
});

describe('fileSource', () => {
  it('streams the file in chunks and reports progress', async () => {
    const dir = await tempDir();
    const path = join(dir, 'a.bin');
    const content = Buffer.alloc(2.5 * 1024 * 1024, 9);
    await writeFile(path, content);
    const seen: number[] = [];
    const source = fileSource(path, { type: 'application/octet-stream', size: content.length, onBytes: (sent) => seen.push(sent) });
    expect(await collect(source.stream())).toEqual(content);
    expect(seen).toEqual([1024 * 1024, 2 * 1024 * 1024, 2.5 * 1024 * 1024]);
    // A fresh handle per stream: a second attempt reads it all again.
    expect((await collect(source.stream())).length).toBe(content.length);
  });

  it('fails when the file is shorter than what was hashed, and sends no more than that when it grew', async () => {
    const dir = await tempDir();
    const path = join(dir, 'a.bin');
    await writeFile(path, 'short');
    await expect(collect(fileSource(path, { type: '', size: 10 }).stream())).rejects.toBeInstanceOf(FileChangedError);
    expect((await collect(fileSource(path, { type: '', size: 3 }).stream())).toString()).toBe('sho');
  });
});
