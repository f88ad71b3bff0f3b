import { describe, expect, it } from 'vitest';
import { isPrice } from './CatalogAdminPage';

describe('isPrice', () => {
  it('takes what the API takes: up to 8 digits, up to 4 decimals', () => {
    for (const ok of ['0', '2.73', '2.7300', '12345678.1234', ' 1.5 ']) expect(isPrice(ok), ok).toBe(true);
    for (const bad of ['', '-1', '1.23456', '123456789', '1,5', 'abc', '.5', '1.']) expect(isPrice(bad), bad).toBe(false);
  });
});
