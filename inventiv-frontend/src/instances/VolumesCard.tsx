// The instance's cloud volumes (`GET /instances/{id}/volumes`): boot volume
// first, size, whether termination deletes it, and its state (attached,
// deleted by us, or missing at the provider).
import { Card, DateText, Empty, ErrorMessage, Loading, StatusBadge } from '../components/ui';
import { useInstanceVolumes } from './api';

export function VolumesCard({ instanceId, status }: { instanceId: string; status: string }) {
  const volumes = useInstanceVolumes(instanceId, status);
  return (
    <Card title="Volumes">
      {volumes.isPending ? (
        <Loading />
      ) : volumes.isError ? (
        <ErrorMessage error={volumes.error} />
      ) : volumes.data.length === 0 ? (
        <Empty>No volume recorded yet: they are listed once the provider created the server.</Empty>
      ) : (
        <table className="simple-table" aria-label="Volumes">
          <thead>
            <tr>
              <th scope="col">Volume</th>
              <th scope="col">Role</th>
              <th scope="col">Type</th>
              <th scope="col">Size</th>
              <th scope="col">At termination</th>
              <th scope="col">State</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {volumes.data.map((v) => (
              <tr key={v.id}>
                <td>
                  <code>{v.provider_volume_id}</code> ({v.zone})
                </td>
                <td>{v.is_boot ? 'boot' : 'data'}</td>
                <td>{v.volume_type}</td>
                <td>{v.size_gb} GB</td>
                <td>{v.delete_on_terminate ? 'deleted' : 'kept (persistent)'}</td>
                <td>
                  <StatusBadge kind="volume" status={v.status} />
                  {v.deleted_at ? (
                    <>
                      {' '}
                      <DateText value={v.deleted_at} />
                    </>
                  ) : null}
                </td>
                <td>
                  <DateText value={v.created_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}
