import { stepLabel } from './timelineLabels';

describe('timeline labels', () => {
  it('names known steps in words and reads unknown codes as words', () => {
    expect(stepLabel('PROVIDER_CREATE')).toBe('Server created at the provider');
    expect(stepLabel('WORKER_SSH_INSTALL_AGENT')).toBe('Bootstrap: agent installed');
    expect(stepLabel('SOMETHING_NEW')).toBe('Something new');
  });
});
