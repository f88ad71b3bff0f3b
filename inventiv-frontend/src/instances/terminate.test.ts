import type { Instance, Offering } from '../api/types';
import { consequences, workerLabel } from './terminate';

const inst = (id: string, model_id: string, status: Instance['status']) => ({ id, name: id, model_id, status }) as Instance;
const offering = (address: string, model_code: string) => ({ address, model_code }) as Offering;

describe('terminating an instance', () => {
  it('finds the other instances serving its model and the offerings of that model', () => {
    const target = inst('a', 'qwen', 'ready');
    const all = [target, inst('b', 'qwen', 'ready'), inst('c', 'qwen', 'terminated'), inst('d', 'llama', 'ready')];
    const c = consequences(target, all, [offering('acme/qwen', 'qwen'), offering('acme/llama', 'llama')]);
    expect(c.others.map((i) => i.id)).toEqual(['b']);
    expect(c.offerings.map((o) => o.address)).toEqual(['acme/qwen']);
    expect(consequences(target, undefined, undefined)).toEqual({ others: [], offerings: [] });
  });

  it('never says the worker is ready once the instance is terminating or gone', () => {
    expect(workerLabel({ status: 'ready', worker_status: 'ready' })).toBe('ready');
    expect(workerLabel({ status: 'terminating', worker_status: 'ready' })).toMatch(/^stopping/);
    expect(workerLabel({ status: 'terminated', worker_status: 'ready' })).toMatch(/^none/);
    expect(workerLabel({ status: 'archived', worker_status: 'ready' })).toMatch(/^none/);
  });
});
