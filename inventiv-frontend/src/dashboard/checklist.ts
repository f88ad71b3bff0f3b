// The dashboard's first-run checklist, kept apart from React: the four
// steps from a fresh organization to a first call, each done or not from
// what the organization has (an operational provider, an instance, an API
// key, a request in its usage).

export interface ChecklistFacts {
  /** Some provider is activated on both sides. */
  activated: boolean;
  /** The organization has an instance (any status short of archived). */
  deployed: boolean;
  /** The organization has an API key. */
  keyed: boolean;
  /** Its usage counts a request. */
  called: boolean;
}

export interface ChecklistStep {
  id: keyof ChecklistFacts;
  title: string;
  text: string;
  link: { to: string; label: string };
  done: boolean;
}

/** The deploy dialog, opened by the instances page. */
export const DEPLOY_LINK = '/instances?deploy=1';

export function checklistSteps(f: ChecklistFacts): ChecklistStep[] {
  return [
    {
      id: 'activated',
      title: 'Activate a path',
      text: 'Choose a provider, zone, instance type and model, and switch them on for this organization in one click.',
      link: { to: DEPLOY_LINK, label: 'Choose a path' },
      done: f.activated,
    },
    {
      id: 'deployed',
      title: 'Deploy a model',
      text: 'Start an instance serving the model; the dialog shows what it costs per hour, day and month.',
      link: { to: DEPLOY_LINK, label: 'Open the deploy dialog' },
      done: f.deployed,
    },
    {
      id: 'keyed',
      title: 'Create an API key',
      text: 'For your applications: OpenAI-compatible calls to /v1.',
      link: { to: '/api-keys', label: 'API keys' },
      done: f.keyed,
    },
    {
      id: 'called',
      title: 'Call it',
      text: 'Chat with the model in the playground, or call it with the key (the playground shows the snippet).',
      link: { to: '/playground', label: 'Open the playground' },
      done: f.called,
    },
  ];
}
