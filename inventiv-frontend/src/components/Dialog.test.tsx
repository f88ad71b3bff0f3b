import { cleanup, render, screen } from '@testing-library/react';
import { Dialog } from './Dialog';

afterEach(cleanup);

describe('Dialog', () => {
  it('puts the focus on its first field when it opens', () => {
    render(
      <Dialog title="Deploy a model" open onClose={() => undefined}>
        <select aria-label="Provider" disabled />
        <input aria-label="Name" />
        <input aria-label="Other" />
      </Dialog>,
    );
    expect(document.activeElement).toBe(screen.getByRole('textbox', { name: 'Name' }));
  });
});
