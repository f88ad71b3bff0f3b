import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { MemoryRouter } from 'react-router';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectBox, endpoint } from './ConnectBox';

afterEach(cleanup);

describe('the connect box', () => {
  it('points at /v1 of this origin', () => {
    expect(endpoint('https://inventiv.example')).toBe('https://inventiv.example/v1');
  });

  it('shows the endpoint, the model id and a snippet for the chosen language', () => {
    render(
      <MemoryRouter>
        <ConnectBox model="acme/Qwen/Qwen2.5-0.5B-Instruct" />
      </MemoryRouter>,
    );
    expect(screen.getAllByText(`${window.location.origin}/v1`).length).toBeGreaterThan(0);
    expect(screen.getByText('acme/Qwen/Qwen2.5-0.5B-Instruct')).toBeTruthy();
    expect(document.querySelector('pre code')?.textContent).toContain('curl');
    fireEvent.change(screen.getByLabelText('Snippet'), { target: { value: 'python' } });
    const python = document.querySelector('pre code')?.textContent ?? '';
    expect(python).toContain('from openai import OpenAI');
    expect(python).toContain('"acme/Qwen/Qwen2.5-0.5B-Instruct"');
  });
});
