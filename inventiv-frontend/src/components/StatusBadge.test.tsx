import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { instanceStatusValues, type InstanceStatus } from '../api/types';
import { LIVE_STATUSES } from '../instances/api';
import { StatusBadge } from './ui';

describe('status badges and lists (from the generated enums)', () => {
  it('shows a status in words, in its tone', () => {
    render(<StatusBadge kind="instance" status="worker_dead" />);
    expect(screen.getByText('worker dead').className).toBe('badge badge-bad');
  });

  it('still shows a status this build does not know, toneless', () => {
    render(<StatusBadge kind="instance" status={'hibernating' as InstanceStatus} />);
    expect(screen.getByText('hibernating').className).toBe('badge badge-off');
  });

  it('asks the events stream for every status but archived', () => {
    expect(LIVE_STATUSES).not.toContain('archived');
    expect(LIVE_STATUSES).toHaveLength(instanceStatusValues.length - 1);
  });
});
