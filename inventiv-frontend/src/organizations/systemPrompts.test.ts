import { describe, expect, it } from 'vitest';
import type { SystemPrompt } from '../api/types';
import { promptOf } from './SystemPromptCard';

const at = '2026-12-07T00:00:00Z';
const prompt = (scope: string, target_id: string, content: string): SystemPrompt => ({ scope, target_id, content, mode: 'if_absent', version: 1, updated_by: null, updated_at: at });

describe('the prompt of one target', () => {
  const list = [prompt('organization', 'o1', 'org'), prompt('api_key', 'k1', 'key'), prompt('offering', 'f1', 'offering')];

  it('is found by scope and target, and only there', () => {
    expect(promptOf(list, 'api_key', 'k1')?.content).toBe('key');
    expect(promptOf(list, 'offering', 'f1')?.content).toBe('offering');
    expect(promptOf(list, 'api_key', 'f1')).toBeUndefined();
    expect(promptOf(undefined, 'api_key', 'k1')).toBeUndefined();
  });
});
