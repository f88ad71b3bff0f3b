import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render, screen } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router';
import { Layout } from '../app/Layout';
import { clearAccessToken, maybeSignedIn, setAccessToken } from './session';

afterEach(() => window.localStorage.clear());

describe('the signed-in hint', () => {
  it('follows logging in and out', () => {
    expect(maybeSignedIn()).toBe(false);
    setAccessToken('token', 900);
    expect(maybeSignedIn()).toBe(true);
    clearAccessToken();
    expect(maybeSignedIn()).toBe(false);
  });

  it('sends a logged-out visit to the login page without asking the API (no 401 in the console)', async () => {
    const fetch = vi.fn();
    vi.stubGlobal('fetch', fetch);
    render(
      <QueryClientProvider client={new QueryClient()}>
        <MemoryRouter initialEntries={['/keys']}>
          <Routes>
            <Route path="/login" element={<p>login page</p>} />
            <Route path="*" element={<Layout />} />
          </Routes>
        </MemoryRouter>
      </QueryClientProvider>,
    );
    await screen.findByText('login page');
    expect(fetch).not.toHaveBeenCalled();
    vi.unstubAllGlobals();
  });
});
