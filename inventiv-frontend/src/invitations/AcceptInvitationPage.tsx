// /invitations/:token, the link of an invitation e-mail: shows who invites
// to what, then joins (logged in as the invitee) or creates the account.
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { ApiError } from '../api/client';
import { AuthLayout } from '../auth/AuthLayout';
import { useMe } from '../auth/useMe';
import { ErrorMessage, Field, Loading } from '../components/ui';
import { useAcceptInvitation, useInvitationPreview, useSwitchOrganization } from '../organizations/api';

export function AcceptInvitationPage() {
  const { token = '' } = useParams();
  const preview = useInvitationPreview(token);
  // Only an existing account can be logged in; a newcomer's page asks nothing.
  const me = useMe(preview.data?.account_exists === true);
  if (preview.isPending) {
    return (
      <AuthLayout title="Invitation">
        <Loading />
      </AuthLayout>
    );
  }
  if (preview.isError) {
    const notFound = preview.error instanceof ApiError && preview.error.status === 404;
    return (
      <AuthLayout title="Invitation">
        {notFound ? (
          <p className="error" role="alert">
            This invitation link is not valid. Ask for a new invitation.
          </p>
        ) : (
          <ErrorMessage error={preview.error} />
        )}
      </AuthLayout>
    );
  }
  const p = preview.data;
  const loggedInAs = me.data?.user.email;
  return (
    <AuthLayout title={`Join ${p.organization_name}`}>
      <p>
        <strong>{p.inviter_name}</strong> invites <strong>{p.email}</strong> to join <strong>{p.organization_name}</strong> as{' '}
        <strong>{p.role}</strong>.
      </p>
      {p.status !== 'pending' ? (
        <>
          <p className="error" role="alert">
            This invitation is {p.status}.
          </p>
          <p>
            <Link to="/">Go to the dashboard</Link>
          </p>
        </>
      ) : p.account_exists ? (
        loggedInAs === p.email ? (
          <AcceptAsMember token={token} />
        ) : (
          <p>
            {loggedInAs ? `You are logged in as ${loggedInAs}. ` : ''}
            <Link to={`/login?next=${encodeURIComponent(`/invitations/${token}`)}`}>Log in as {p.email}</Link> to accept.
          </p>
        )
      ) : (
        <CreateAccount token={token} />
      )}
    </AuthLayout>
  );
}

function AcceptAsMember({ token }: { token: string }) {
  const accept = useAcceptInvitation(token);
  const switchOrg = useSwitchOrganization();
  const navigate = useNavigate();
  return (
    <>
      <button
        type="button"
        className="button button-primary"
        disabled={accept.isPending || switchOrg.isPending}
        onClick={() =>
          accept.mutate({}, { onSuccess: (answer) => switchOrg.mutate(answer.organization_id, { onSuccess: () => navigate('/') }) })
        }
      >
        Accept and switch to it
      </button>
      <ErrorMessage error={accept.error ?? switchOrg.error} />
    </>
  );
}

function CreateAccount({ token }: { token: string }) {
  const accept = useAcceptInvitation(token);
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    accept.mutate({ display_name: name.trim(), password }, { onSuccess: () => navigate('/') });
  };
  return (
    <form className="form" onSubmit={submit} aria-label="Create your account">
      <Field label="Your name" required maxLength={100} autoComplete="name" value={name} onChange={(e) => setName(e.target.value)} autoFocus />
      <Field
        label="Choose a password"
        type="password"
        required
        minLength={10}
        maxLength={1024}
        autoComplete="new-password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        hint="At least 10 characters."
      />
      <ErrorMessage error={accept.error} />
      <button type="submit" className="button button-primary" disabled={accept.isPending}>
        Create my account and join
      </button>
    </form>
  );
}
