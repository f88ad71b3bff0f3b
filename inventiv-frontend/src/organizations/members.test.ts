import { describe, expect, it } from 'vitest';
import { roleChangeQuestion } from './MembersPage';

describe('a role change', () => {
  it('asks with its consequence', () => {
    expect(roleChangeQuestion('ana@example.com', 'user', 'admin')).toBe(
      'Make ana@example.com admin instead of user? They will manage members, keys, providers, hosts and deployments.',
    );
    expect(roleChangeQuestion('bo@example.com', 'admin', 'user')).toContain('They will manage nothing');
  });
});
