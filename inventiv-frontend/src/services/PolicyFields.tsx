// The policy's fields (bounds, scaling targets, scale to zero, caps), each
// with its bound as a hint and, once checked, its refusal in place.
import { Field } from '../components/ui';
import { BOUNDS, type PolicyErrors, type PolicyForm } from './policy';

interface Props {
  value: PolicyForm;
  errors: PolicyErrors;
  onChange: (next: PolicyForm) => void;
}

const FIELDS: { key: keyof PolicyForm; label: string; hint: string; inputMode: 'numeric' | 'decimal' }[] = [
  { key: 'min_replicas', label: 'Minimum replicas', hint: `0 to the maximum; 0 scales to zero`, inputMode: 'numeric' },
  { key: 'max_replicas', label: 'Maximum replicas', hint: `1 to ${BOUNDS.maxReplicas}`, inputMode: 'numeric' },
  { key: 'target_outstanding', label: 'Target outstanding per replica', hint: `above 0, at most ${BOUNDS.maxTargetOutstanding}; empty: not a signal`, inputMode: 'decimal' },
  { key: 'target_ttft_p95_ms', label: 'Target TTFT p95 (ms)', hint: `1 to ${BOUNDS.maxTargetTtftP95Ms}; empty: not a signal`, inputMode: 'numeric' },
  { key: 'idle_window_s', label: 'Idle window (s)', hint: `1 to ${BOUNDS.maxIdleWindowS}: without requests this long, down to the minimum`, inputMode: 'numeric' },
  { key: 'scale_down_cooldown_s', label: 'Scale-down cooldown (s)', hint: `0 to ${BOUNDS.maxScaleDownCooldownS}`, inputMode: 'numeric' },
  { key: 'gpu_hours_cap', label: 'GPU hours cap per month', hint: 'a non-negative decimal; empty: no cap', inputMode: 'decimal' },
  { key: 'eur_cap', label: 'EUR cap per month', hint: 'a non-negative decimal; empty: no cap', inputMode: 'decimal' },
];

export function PolicyFields({ value, errors, onChange }: Props) {
  return (
    <div className="form-row">
      {FIELDS.map((f) => {
        const error = errors[f.key];
        return (
          <Field
            key={f.key}
            label={f.label}
            name={f.key}
            inputMode={f.inputMode}
            value={value[f.key]}
            aria-invalid={error ? true : undefined}
            onChange={(e) => onChange({ ...value, [f.key]: e.target.value })}
            hint={error ? <span className="error">{`${f.label}: ${error}`}</span> : f.hint}
          />
        );
      })}
    </div>
  );
}
