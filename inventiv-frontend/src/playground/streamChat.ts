// Streams a chat completion from the OpenAI-compatible `/v1` endpoint:
// fetch + ReadableStream, reading Server-Sent Events `data:` lines, and
// measuring time to first token and tokens per second.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  max_tokens?: number;
}

export interface StreamStats {
  /** From sending the request to the first content. */
  ttftMs: number | null;
  totalMs: number;
  /** Completion tokens: the server's count when it sent usage, else the chunks seen. */
  completionTokens: number;
  promptTokens: number | null;
  /** Completion tokens per second after the first one. */
  tokensPerSecond: number | null;
  /** Cut short by the caller (AbortSignal). */
  stopped: boolean;
}

/** Splits SSE text into complete events' data; returns what is left over. */
export function parseSse(buffer: string): { data: string[]; rest: string } {
  const data: string[] = [];
  const normalized = buffer.replace(/\r\n?/g, '\n');
  const events = normalized.split('\n\n');
  const rest = events.pop() ?? '';
  for (const event of events) {
    const lines = event.split('\n').filter((l) => l.startsWith('data:'));
    if (lines.length === 0) continue;
    data.push(lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n'));
  }
  return { data, rest };
}

interface Chunk {
  choices?: { delta?: { content?: string | null; reasoning_content?: string | null } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string };
}

export class ChatError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}

export async function streamChat(options: {
  baseUrl: string;
  token: string;
  request: ChatRequest;
  signal?: AbortSignal;
  onDelta: (text: string) => void;
  now?: () => number;
}): Promise<StreamStats> {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const response = await fetch(`${options.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${options.token}`, accept: 'text/event-stream' },
    body: JSON.stringify({ ...options.request, stream: true, stream_options: { include_usage: true } }),
    signal: options.signal,
  });
  if (!response.ok || !response.body) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { error?: { message?: string } };
      if (body.error?.message) message = body.error.message;
    } catch {
      // keep the status line
    }
    throw new ChatError(message, response.status);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  // Stop reading at once on abort, whatever the body does.
  const onAbort = () => void reader.cancel().catch(() => undefined);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let buffer = '';
  let first: number | null = null;
  let chunks = 0;
  let usage: Chunk['usage'] = null;
  let done = false;
  while (!done && !options.signal?.aborted) {
    let chunkRead: ReadableStreamReadResult<string>;
    try {
      chunkRead = await reader.read();
    } catch (err) {
      if (options.signal?.aborted) break;
      throw err;
    }
    const { value, done: end } = chunkRead;
    if (end) break;
    buffer += value;
    const parsed = parseSse(buffer);
    buffer = parsed.rest;
    for (const data of parsed.data) {
      if (data === '[DONE]') {
        done = true;
        break;
      }
      let chunk: Chunk;
      try {
        chunk = JSON.parse(data) as Chunk;
      } catch {
        continue;
      }
      if (chunk.error) throw new ChatError(chunk.error.message ?? 'the model failed');
      if (chunk.usage) usage = chunk.usage;
      const text = chunk.choices?.[0]?.delta?.content ?? '';
      if (text) {
        first ??= now();
        chunks += 1;
        options.onDelta(text);
      }
    }
  }
  options.signal?.removeEventListener('abort', onAbort);
  if (done) await reader.cancel().catch(() => undefined);
  const ended = now();
  const completionTokens = usage?.completion_tokens ?? chunks;
  const generating = first === null ? 0 : (ended - first) / 1000;
  return {
    ttftMs: first === null ? null : first - started,
    totalMs: ended - started,
    completionTokens,
    promptTokens: usage?.prompt_tokens ?? null,
    tokensPerSecond: generating > 0 && completionTokens > 1 ? (completionTokens - 1) / generating : null,
    stopped: Boolean(options.signal?.aborted),
  };
}
