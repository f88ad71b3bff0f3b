import { cleanup, render } from '@testing-library/react';
import { Margin } from './Margin';

afterEach(cleanup);

describe('Margin', () => {
  it('writes a loss in the danger color, with a true minus and why in its title', () => {
    const { container } = render(<Margin value="-12.3456" />);
    const span = container.querySelector('span');
    expect(span?.textContent).toBe('−12.35 EUR');
    expect(span?.className).toContain('negative');
    expect(span?.getAttribute('title')).toMatch(/^Negative margin: .* Exactly −12\.3456 EUR\.$/);
  });

  it('writes a gain or zero as any amount', () => {
    const { container } = render(<Margin value="4.5" />);
    expect(container.textContent).toBe('4.50 EUR');
    expect(container.querySelector('.negative')).toBeNull();
    cleanup();
    expect(render(<Margin value="-0.0000" />).container.querySelector('.negative')).toBeNull();
  });
});
