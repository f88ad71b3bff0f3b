import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SystemPrompt } from '../api/types';
import { SystemPromptCard } from './SystemPromptCard';

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const model: SystemPrompt = {
  scope: 'model',
  target_id: '8a1f0000-0000-4000-8000-000000000001',
  content: 'You are a helpful assistant.',
  mode: 'if_absent',
  version: 3,
  updated_at: '2026-12-06T10:00:00Z',
};

/** The API: the prompts in force, and what a PUT sets. */
function serve() {
  const calls: { method: string; url: string; body: unknown }[] = [];
  let prompts: SystemPrompt[] = [model];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init?: RequestInit) => {
      const method = init?.method ?? 'GET';
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      calls.push({ method, url, body });
      if (url === '/organizations/current/system-prompts') return json(prompts);
      if (url === '/organizations/current/system-prompt' && method === 'PUT') {
        const set: SystemPrompt = { ...model, scope: 'organization', target_id: 'o', version: 1, ...(body as object) };
        prompts = [set, model];
        return json(set);
      }
      return json({ error: { code: 'NOT_FOUND', message: `no ${url}`, request_id: 'r' } }, 404);
    }),
  );
  return calls;
}

function renderCard(editable: boolean) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <SystemPromptCard editable={editable} />
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('SystemPromptCard', () => {
  it('lists the prompts in force and sets the organization’s with its mode', async () => {
    const calls = serve();
    renderCard(true);
    const list = await screen.findByRole('list', { name: 'System prompts in force' });
    expect(within(list).getByRole('listitem').textContent).toBe('Model (version 3, when the request has no system message): You are a helpful assistant.');
    const form = screen.getByRole('form', { name: 'Set the organization’s system prompt' });
    fireEvent.change(within(form).getByLabelText('Organization system prompt'), { target: { value: '  Answer in French.  ' } });
    fireEvent.change(within(form).getByLabelText('Applied'), { target: { value: 'always' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Set the prompt' }));
    await waitFor(() =>
      expect(within(screen.getByRole('list', { name: 'System prompts in force' })).getAllByRole('listitem')[0]?.textContent).toBe(
        'Organization (version 1, before the request’s own messages): Answer in French.',
      ),
    );
    expect(calls.find((c) => c.method === 'PUT')).toEqual({
      method: 'PUT',
      url: '/organizations/current/system-prompt',
      body: { content: 'Answer in French.', mode: 'always' },
    });
  });

  it('shows a member the prompts without letting them change any', async () => {
    serve();
    renderCard(false);
    await screen.findByRole('list', { name: 'System prompts in force' });
    expect(screen.queryByRole('button', { name: 'Set the prompt' })).toBeNull();
    expect((screen.getByLabelText('Organization system prompt') as HTMLTextAreaElement).disabled).toBe(true);
  });
});
