// A price pair as the tables show it: per 1k tokens (the API's strings), and
// beside it the same per 1M tokens, the unit most price lists use.
import { priceText, priceTextPerMillion } from './prices';

export function Prices({ input, output, cached }: { input: string | null | undefined; output: string | null | undefined; cached?: string | null }) {
  if (!input || !output) return <>free</>;
  return (
    <span className="prices">
      <span>{priceText(input, output, cached)} per 1k</span>{' '}
      <span className="muted">({priceTextPerMillion(input, output, cached)} per 1M)</span>
    </span>
  );
}
