// The same request as code to copy: curl, Python (openai SDK), JavaScript.
export type SnippetLanguage = 'curl' | 'python' | 'javascript';

export function snippet(language: SnippetLanguage, baseUrl: string, model: string, prompt: string): string {
  const content = JSON.stringify(prompt || 'Hello!');
  const m = JSON.stringify(model || 'MODEL');
  switch (language) {
    case 'curl':
      return [
        `curl ${baseUrl}/chat/completions \\`,
        `  -H "Authorization: Bearer $INVENTIV_API_KEY" \\`,
        `  -H "Content-Type: application/json" \\`,
        `  -d '${JSON.stringify({ model: model || 'MODEL', messages: [{ role: 'user', content: prompt || 'Hello!' }] }).replace(/'/g, "'\\''")}'`,
      ].join('\n');
    case 'python':
      return [
        'import os',
        'from openai import OpenAI',
        '',
        `client = OpenAI(base_url="${baseUrl}", api_key=os.environ["INVENTIV_API_KEY"])`,
        'stream = client.chat.completions.create(',
        `    model=${m},`,
        `    messages=[{"role": "user", "content": ${content}}],`,
        '    stream=True,',
        ')',
        'for chunk in stream:',
        '    if chunk.choices and chunk.choices[0].delta.content:',
        '        print(chunk.choices[0].delta.content, end="", flush=True)',
      ].join('\n');
    case 'javascript':
      return [
        "import OpenAI from 'openai';",
        '',
        `const client = new OpenAI({ baseURL: '${baseUrl}', apiKey: process.env.INVENTIV_API_KEY });`,
        'const stream = await client.chat.completions.create({',
        `  model: ${m},`,
        `  messages: [{ role: 'user', content: ${content} }],`,
        '  stream: true,',
        '});',
        'for await (const chunk of stream) {',
        "  process.stdout.write(chunk.choices[0]?.delta?.content ?? '');",
        '}',
      ].join('\n');
  }
}
