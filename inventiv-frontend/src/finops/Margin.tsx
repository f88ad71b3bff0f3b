// A margin: a loss reads in the danger color with a true minus sign ("−")
// and a title saying what it means; gains and zero (never "-0.00") read as
// any amount.
import { formatEur, formatExactEur } from '../components/format';
import { Money } from '../components/ui';
import { classifyMargin, NEGATIVE_MARGIN_TITLE } from './margin';

export function Margin({ value }: { value: string | null | undefined }) {
  const sign = classifyMargin(value);
  // "-0.0000" is even: written without its sign.
  if (sign !== 'negative' || !value) return <Money value={sign === 'zero' && value ? value.trim().replace(/^-/, '') : value} />;
  const magnitude = value.trim().replace(/^-/, '');
  return (
    <span className="num negative margin-negative" title={`${NEGATIVE_MARGIN_TITLE} Exactly −${formatExactEur(magnitude)}.`}>
      −{formatEur(magnitude)}
    </span>
  );
}
