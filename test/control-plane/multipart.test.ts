import { describe, expect, it } from 'vitest';
import { MultipartError, multipartBoundary, parseMultipart, type MultipartPart } from './multipart.js';

async function encode(form: FormData): Promise<{ bytes: Buffer; boundary: string }> {
  const response = new Response(form);
  const boundary = multipartBoundary(response.headers.get('content-type'));
  if (boundary === undefined) throw new Error('no boundary');
  return { bytes: Buffer.from(await response.arrayBuffer()), boundary };
}

function chunked(bytes: Buffer, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(new Uint8Array(bytes.subarray(offset, offset + size)));
      offset += size;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>, boundary: string, maxBytes = 1 << 20): Promise<{ part: MultipartPart; data: Buffer }[]> {
  const parts: { part: MultipartPart; data: Buffer[] }[] = [];
  await parseMultipart(
    stream,
    boundary,
    {
      onPart: (part) => parts.push({ part, data: [] }),
      onData: (chunk) => parts.at(-1)?.data.push(Buffer.from(chunk)),
      onPartEnd: () => undefined,
    },
    { maxBytes },
  );
  return parts.map(({ part, data }) => ({ part, data: Buffer.concat(data) }));
}

describe('streaming multipart parser', () => {
  it('parses what undici FormData sends, whatever the chunking', async () => {
    // File content that looks like the start of a delimiter, to catch a naive search.
    const nasty = Buffer.concat([Buffer.from('\r\n--\r\n-'), Buffer.alloc(300, 7), Buffer.from('\r\n--formdata')]);
    const form = new FormData();
    form.append('metadata', new Blob(['{"type":"snapshot"}'], { type: 'application/json' }));
    form.append('file', new Blob([nasty], { type: 'application/octet-stream' }), 'a "quoted" name.bin');
    const { bytes, boundary } = await encode(form);
    for (const size of [1, 2, 3, 5, 17, 64, 1000, bytes.length]) {
      const parts = await collect(chunked(bytes, size), boundary);
      expect(parts.map((p) => p.part.name)).toEqual(['metadata', 'file']);
      expect(parts[0]?.data.toString()).toBe('{"type":"snapshot"}');
      expect(parts[0]?.part.contentType).toBe('application/json');
      expect(parts[1]?.data.equals(nasty)).toBe(true);
      expect(parts[1]?.part.contentType).toBe('application/octet-stream');
    }
  });

  it('rejects a body that ends before the closing boundary', async () => {
    const { bytes, boundary } = await encode((() => { const f = new FormData(); f.append('a', 'b'); return f; })());
    await expect(collect(chunked(bytes.subarray(0, bytes.length - 10), 7), boundary)).rejects.toMatchObject({ code: 'invalid_multipart' });
  });

  it('stops with payload_too_large past maxBytes', async () => {
    const form = new FormData();
    form.append('file', new Blob([Buffer.alloc(10_000)]));
    const { bytes, boundary } = await encode(form);
    await expect(collect(chunked(bytes, 1000), boundary, 5000)).rejects.toBeInstanceOf(MultipartError);
  });

  it('reads the boundary from the Content-Type, quoted or not', () => {
    expect(multipartBoundary('multipart/form-data; boundary=abc')).toBe('abc');
    expect(multipartBoundary('multipart/form-data; charset=utf-8; boundary="a b"')).toBe('a b');
    expect(multipartBoundary('application/json')).toBeUndefined();
    expect(multipartBoundary(null)).toBeUndefined();
  });
});
