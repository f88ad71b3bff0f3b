// How to call a model: the OpenAI-compatible endpoint, the model id to
// send, and a snippet to copy (the playground's, for one language at a time).
import { useId, useState } from 'react';
import { Link } from 'react-router';
import { snippet, type SnippetLanguage } from '../playground/snippets';
import { CopyButton } from './CopyButton';
import { Card, SelectField } from './ui';

/** The endpoint clients point the OpenAI SDK at. */
export function endpoint(origin: string = window.location.origin): string {
  return `${origin}/v1`;
}

export function ConnectBox({ model }: { model: string }) {
  const [language, setLanguage] = useState<SnippetLanguage>('curl');
  const base = endpoint();
  const code = snippet(language, base, model, 'Hello!');
  const codeId = useId();
  return (
    <Card title="Connect">
      <dl className="facts">
        <dt>Endpoint</dt>
        <dd>
          <code>{base}</code> <CopyButton text={base} label="Copy the endpoint" />
        </dd>
        <dt>Model</dt>
        <dd>
          <code>{model}</code> <CopyButton text={model} label="Copy the model id" />
        </dd>
        <dt>Key</dt>
        <dd>
          an <Link to="/keys">API key</Link> of this organization, as a bearer token
        </dd>
      </dl>
      <SelectField label="Snippet" value={language} onChange={(e) => setLanguage(e.target.value as SnippetLanguage)}>
        <option value="curl">curl</option>
        <option value="python">Python (openai)</option>
        <option value="javascript">JavaScript (openai)</option>
      </SelectField>
      <pre className="code" id={codeId}>
        <code>{code}</code>
      </pre>
      <CopyButton text={code} label="Copy the snippet" />
    </Card>
  );
}
