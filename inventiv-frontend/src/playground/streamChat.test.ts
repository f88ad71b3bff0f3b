import { parseSse, streamChat } from './streamChat';

describe('parseSse', () => {
  it('returns complete events and keeps the partial one', () => {
    const { data, rest } = parseSse('data: {"a":1}\n\n: keep-alive\n\ndata: [DONE]\n\ndata: {"b"');
    expect(data).toEqual(['{"a":1}', '[DONE]']);
    expect(rest).toBe('data: {"b"');
  });

  it('handles CRLF line ends', () => {
    expect(parseSse('data: x\r\n\r\n').data).toEqual(['x']);
  });
});

function sseResponse(parts: string[]): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of parts) controller.enqueue(encoder.encode(p));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

const chunk = (content: string) => `data: ${JSON.stringify({ choices: [{ delta: { content } }] })}\n\n`;

describe('streamChat', () => {
  it('streams deltas split anywhere and measures the answer', async () => {
    const whole = chunk('Hel') + chunk('lo') + chunk('!') + `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 3 } })}\n\n` + 'data: [DONE]\n\n';
    const fetchMock = vi.fn(async () => sseResponse([whole.slice(0, 17), whole.slice(17, 60), whole.slice(60)]));
    vi.stubGlobal('fetch', fetchMock);
    let t = 0;
    const deltas: string[] = [];
    const stats = await streamChat({
      baseUrl: 'http://x/v1',
      token: 'tok',
      request: { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
      onDelta: (d) => deltas.push(d),
      now: () => (t += 100),
    });
    vi.unstubAllGlobals();
    expect(deltas.join('')).toBe('Hello!');
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('http://x/v1/chat/completions');
    expect((init.headers as Record<string, string>).authorization).toBe('Bearer tok');
    expect(JSON.parse(String(init.body))).toMatchObject({ model: 'm', stream: true });
    expect(stats.completionTokens).toBe(3);
    expect(stats.promptTokens).toBe(5);
    expect(stats.ttftMs).toBe(100);
    expect(stats.tokensPerSecond).toBeGreaterThan(0);
  });

  it('stops reading when aborted', async () => {
    const encoder = new TextEncoder();
    // One chunk, then nothing: a stream that would never end by itself.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(chunk('Hel')));
      },
    });
    vi.stubGlobal('fetch', vi.fn(async (_url: string, init: RequestInit) => {
      init.signal?.addEventListener('abort', () => body.cancel().catch(() => undefined));
      return new Response(body, { status: 200 });
    }));
    const controller = new AbortController();
    const deltas: string[] = [];
    const done = streamChat({
      baseUrl: '/v1',
      token: 't',
      request: { model: 'm', messages: [] },
      signal: controller.signal,
      onDelta: (d) => {
        deltas.push(d);
        controller.abort();
      },
    });
    await expect(done).resolves.toMatchObject({ completionTokens: 1, stopped: true });
    expect(deltas).toEqual(['Hel']);
    vi.unstubAllGlobals();
  });

  it('turns an OpenAI-shaped error into a ChatError', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response(JSON.stringify({ error: { message: 'model not found' } }), { status: 404 })));
    await expect(
      streamChat({ baseUrl: '/v1', token: 't', request: { model: 'x', messages: [] }, onDelta: () => undefined }),
    ).rejects.toThrow('model not found');
    vi.unstubAllGlobals();
  });
});
