import { checklistSteps, DEPLOY_LINK } from './checklist';

describe('first-run checklist', () => {
  it('goes activate → deploy → create a key → call it, each ticked from its own fact', () => {
    const steps = checklistSteps({ activated: true, deployed: false, keyed: true, called: false });
    expect(steps.map((s) => [s.title, s.done])).toEqual([
      ['Activate a path', true],
      ['Deploy a model', false],
      ['Create an API key', true],
      ['Call it', false],
    ]);
    expect(steps[0]?.link.to).toBe(DEPLOY_LINK);
    expect(steps[3]?.link.to).toBe('/playground');
  });
});
