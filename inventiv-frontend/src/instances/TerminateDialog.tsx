// The confirmation before terminating an instance, stating what it breaks:
// the model it serves (calls fail when no other instance serves it), the
// organization's offerings of that model and their consumers, the server
// and volumes deleted, the cost stopping.
import type { Instance } from '../api/types';
import { useCan } from '../auth/useMe';
import { Dialog } from '../components/Dialog';
import { useOfferings } from '../offerings/api';
import { useInstances } from './api';
import { consequences } from './terminate';

export function TerminateDialog({ instance, onClose, onConfirm }: { instance: Instance | null; onClose: () => void; onConfirm: (i: Instance) => void }) {
  return (
    <Dialog title={instance ? `Terminate ${instance.name}?` : 'Terminate'} open={instance !== null} onClose={onClose}>
      {instance ? <Consequences instance={instance} onClose={onClose} onConfirm={onConfirm} /> : null}
    </Dialog>
  );
}

function Consequences({ instance, onClose, onConfirm }: { instance: Instance; onClose: () => void; onConfirm: (i: Instance) => void }) {
  const instances = useInstances();
  const seesOfferings = useCan('ViewOfferings');
  const offerings = useOfferings(seesOfferings);
  const { others, offerings: broken } = consequences(instance, instances.data, offerings.data);
  return (
    <div className="form" aria-label="What terminating breaks">
      <ul className="consequences">
        <li>
          Its server at {instance.provider} ({instance.zone}) is deleted, with its volumes not kept at termination; its cost stops.
        </li>
        <li>
          {others.length > 0 ? (
            <>
              <code>{instance.model_id}</code> stays served by {others.length} other instance{others.length === 1 ? '' : 's'} ({others.map((o) => o.name).join(', ')}).
            </>
          ) : (
            <>
              <strong>
                Nothing else serves <code>{instance.model_id}</code>:
              </strong>{' '}
              calls to it answer <code>model_not_found</code> until another instance is deployed.
            </>
          )}
        </li>
        {broken.length > 0 && others.length === 0 ? (
          <li>
            <strong>
              {broken.length === 1 ? 'The offering' : `${broken.length} offerings`} {broken.map((o) => o.address).join(', ')} stop answering
            </strong>{' '}
            the organizations they are shared with.
          </li>
        ) : null}
      </ul>
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="button button-danger" onClick={() => onConfirm(instance)}>
          Yes, terminate it
        </button>
      </div>
    </div>
  );
}
