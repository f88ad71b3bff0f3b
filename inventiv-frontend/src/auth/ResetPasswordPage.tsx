// Chooses a new password with the token of a reset link (?token=...).
import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { ErrorMessage, Field } from '../components/ui';
import { useResetPassword } from './api';
import { AuthLayout } from './AuthLayout';

export function ResetPasswordPage() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const reset = useResetPassword();
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const mismatch = confirm.length > 0 && confirm !== password;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (password !== confirm) return;
    reset.mutate({ token, new_password: password });
  };
  if (!token) {
    return (
      <AuthLayout title="Choose a new password">
        <p className="error" role="alert">
          This link has no token. Use the link from the e-mail, or <Link to="/forgot-password">ask for a new one</Link>.
        </p>
      </AuthLayout>
    );
  }
  return (
    <AuthLayout title="Choose a new password">
      {reset.isSuccess ? (
        <p className="notice" role="status">
          Your password was changed and every session was ended. <Link to="/login">Log in</Link> with the new password.
        </p>
      ) : (
        <form onSubmit={submit} className="form" aria-label="New password">
          <Field
            label="New password"
            type="password"
            autoComplete="new-password"
            minLength={10}
            maxLength={1024}
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            hint="At least 10 characters."
            autoFocus
          />
          <Field
            label="Repeat it"
            type="password"
            autoComplete="new-password"
            required
            value={confirm}
            onChange={(e) => setConfirm(e.target.value)}
            aria-invalid={mismatch}
          />
          {mismatch ? (
            <p className="error" role="alert">
              The two passwords differ.
            </p>
          ) : null}
          <ErrorMessage error={reset.error} />
          <button type="submit" className="button button-primary" disabled={reset.isPending || mismatch}>
            Set the password
          </button>
        </form>
      )}
      <p className="auth-links">
        <Link to="/login">Back to login</Link>
      </p>
    </AuthLayout>
  );
}
