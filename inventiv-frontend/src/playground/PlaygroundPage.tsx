// Chat with a deployed model through `/v1/chat/completions`, as the session
// (no API key needed), streamed token by token; with its speed, a stop
// button, and the same call as code.
import { useId, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { sessionToken } from '../api/client';
import { CopyButton } from '../components/CopyButton';
import { Card, ErrorMessage, Field, PageHeader } from '../components/ui';
import { useSystemPrompts } from '../organizations/SystemPromptCard';
import { snippet, type SnippetLanguage } from './snippets';
import { streamChat, type ChatMessage, type StreamStats } from './streamChat';

const BASE_URL = `${window.location.origin}/v1`;

async function readyModels(): Promise<string[]> {
  const token = await sessionToken();
  if (!token) throw new Error('no session');
  const response = await fetch('/v1/models', { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`/v1/models: ${response.status}`);
  const body = (await response.json()) as { data?: { id: string }[] };
  return (body.data ?? []).map((m) => m.id);
}

export function PlaygroundPage() {
  const models = useQuery({ queryKey: ['v1-models'], queryFn: readyModels, refetchInterval: 15_000 });
  const [model, setModel] = useState('');
  const [system, setSystem] = useState('');
  const [prompt, setPrompt] = useState('');
  const [maxTokens, setMaxTokens] = useState('256');
  const [temperature, setTemperature] = useState('0.7');
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [answer, setAnswer] = useState('');
  const [stats, setStats] = useState<StreamStats | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const modelListId = useId();
  const orgPrompt = useSystemPrompts().data?.find((p) => p.scope === 'organization');
  const chosen = model || models.data?.[0] || '';

  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    if (!prompt.trim() || !chosen || streaming) return;
    const history: ChatMessage[] = [...messages, { role: 'user', content: prompt.trim() }];
    setMessages(history);
    setPrompt('');
    setAnswer('');
    setStats(null);
    setError(null);
    setStreaming(true);
    const controller = new AbortController();
    abort.current = controller;
    let text = '';
    try {
      const token = await sessionToken();
      if (!token) throw new Error('Your session ended: log in again.');
      const result = await streamChat({
        baseUrl: BASE_URL,
        token,
        signal: controller.signal,
        request: {
          model: chosen,
          messages: system.trim() ? [{ role: 'system', content: system.trim() }, ...history] : history,
          max_tokens: parseInt(maxTokens, 10) || undefined,
          temperature: Number.isFinite(parseFloat(temperature)) ? parseFloat(temperature) : undefined,
        },
        onDelta: (delta) => {
          text += delta;
          setAnswer(text);
        },
      });
      setStats(result);
    } catch (err) {
      if (!(err instanceof DOMException && err.name === 'AbortError')) setError(err);
    } finally {
      if (text) setMessages((m) => [...m, { role: 'assistant', content: text }]);
      setAnswer('');
      setStreaming(false);
      abort.current = null;
    }
  };

  const onPromptKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void send();
  };

  return (
    <>
      <PageHeader title="Playground" />
      <div className="playground">
        <Card title="Chat">
          <form className="form" onSubmit={send} aria-label="Chat">
            <div className="form-row">
              <Field
                label="Model"
                list={modelListId}
                value={model}
                placeholder={models.data?.[0] ?? 'e.g. Qwen/Qwen2.5-0.5B-Instruct'}
                onChange={(e) => setModel(e.target.value)}
                hint={
                  models.data && models.data.length === 0 ? (
                    <>
                      No model is ready in this organization: <Link to="/instances">deploy one</Link>.
                    </>
                  ) : (
                    'Models with a ready worker.'
                  )
                }
              />
              <datalist id={modelListId}>
                {models.data?.map((m) => (
                  <option key={m} value={m} />
                ))}
              </datalist>
              <Field label="Max tokens" type="number" min={1} max={32768} value={maxTokens} onChange={(e) => setMaxTokens(e.target.value)} />
              <Field label="Temperature" type="number" min={0} max={2} step={0.1} value={temperature} onChange={(e) => setTemperature(e.target.value)} />
            </div>
            <Field
              label="System prompt (optional)"
              value={system}
              onChange={(e) => setSystem(e.target.value)}
              hint={
                orgPrompt
                  ? `${orgPrompt.mode === 'always' ? 'The organization’s system prompt goes first' : 'Left empty, the organization’s system prompt applies'}: “${orgPrompt.content}”`
                  : undefined
              }
            />
            <div className="conversation" aria-live="polite" aria-label="Conversation">
              {messages.length === 0 && !streaming ? <p className="muted">Send a message to start.</p> : null}
              {messages.map((m, n) => (
                <div key={n} className={`message message-${m.role}`}>
                  <span className="message-role">{m.role === 'user' ? 'You' : 'Model'}</span>
                  <p>{m.content}</p>
                </div>
              ))}
              {streaming ? (
                <div className="message message-assistant" aria-busy="true">
                  <span className="message-role">Model</span>
                  <p>{answer || '…'}</p>
                </div>
              ) : null}
            </div>
            <div className="field">
              <label htmlFor="prompt">Message</label>
              <textarea id="prompt" rows={3} value={prompt} onChange={(e) => setPrompt(e.target.value)} onKeyDown={onPromptKey} aria-describedby="prompt-hint" />
              <small id="prompt-hint" className="hint">
                Ctrl+Enter sends.
              </small>
            </div>
            <ErrorMessage error={error} />
            <div className="form-actions">
              <button type="button" className="button" onClick={() => setMessages([])} disabled={streaming || messages.length === 0}>
                Clear
              </button>
              {streaming ? (
                <button type="button" className="button button-danger" onClick={() => abort.current?.abort()}>
                  Stop
                </button>
              ) : (
                <button type="submit" className="button button-primary" disabled={!prompt.trim() || !chosen}>
                  Send
                </button>
              )}
            </div>
          </form>
          <Stats stats={stats} />
        </Card>
        <Card title="Code">
          <Snippets model={chosen} prompt={prompt || messages.findLast((m) => m.role === 'user')?.content || 'Hello!'} />
        </Card>
      </div>
    </>
  );
}

function Stats({ stats }: { stats: StreamStats | null }) {
  return (
    <dl className="stats" aria-label="Speed of the last answer">
      <div>
        <dt>Time to first token</dt>
        <dd>{stats?.ttftMs != null ? `${Math.round(stats.ttftMs)} ms` : '—'}</dd>
      </div>
      <div>
        <dt>Tokens/s</dt>
        <dd>{stats?.tokensPerSecond != null ? stats.tokensPerSecond.toLocaleString(undefined, { maximumFractionDigits: 1 }) : '—'}</dd>
      </div>
      <div>
        <dt>Tokens</dt>
        <dd>{stats ? `${stats.promptTokens ?? '?'} in / ${stats.completionTokens} out` : '—'}</dd>
      </div>
      <div>
        <dt>Total</dt>
        <dd>{stats ? `${(stats.totalMs / 1000).toFixed(2)} s${stats.stopped ? ' (stopped)' : ''}` : '—'}</dd>
      </div>
    </dl>
  );
}

const LANGUAGES: { id: SnippetLanguage; label: string }[] = [
  { id: 'curl', label: 'curl' },
  { id: 'python', label: 'Python' },
  { id: 'javascript', label: 'JavaScript' },
];

function Snippets({ model, prompt }: { model: string; prompt: string }) {
  const [language, setLanguage] = useState<SnippetLanguage>('curl');
  const code = snippet(language, BASE_URL, model, prompt);
  const onKey = (e: KeyboardEvent<HTMLButtonElement>, index: number) => {
    const delta = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!delta) return;
    const next = LANGUAGES[(index + delta + LANGUAGES.length) % LANGUAGES.length];
    if (next) {
      setLanguage(next.id);
      document.getElementById(`tab-${next.id}`)?.focus();
    }
  };
  return (
    <>
      <p className="muted">
        With an <Link to="/keys">API key</Link> in <code>INVENTIV_API_KEY</code>:
      </p>
      <div role="tablist" aria-label="Language" className="tabs">
        {LANGUAGES.map((l, index) => (
          <button
            key={l.id}
            id={`tab-${l.id}`}
            type="button"
            role="tab"
            aria-selected={language === l.id}
            aria-controls="snippet-panel"
            tabIndex={language === l.id ? 0 : -1}
            className={language === l.id ? 'tab tab-active' : 'tab'}
            onClick={() => setLanguage(l.id)}
            onKeyDown={(e) => onKey(e, index)}
          >
            {l.label}
          </button>
        ))}
      </div>
      <div id="snippet-panel" role="tabpanel" aria-labelledby={`tab-${language}`}>
        <pre className="code">
          <code>{code}</code>
        </pre>
        <CopyButton text={code} label="Copy code" />
      </div>
    </>
  );
}
