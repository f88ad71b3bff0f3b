// Asks for a password-reset link (the answer never says whether the account exists).
import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { ErrorMessage, Field } from '../components/ui';
import { useRequestReset } from './api';
import { AuthLayout } from './AuthLayout';

export function ForgotPasswordPage() {
  const request = useRequestReset();
  const [email, setEmail] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    request.mutate(email);
  };
  return (
    <AuthLayout title="Reset your password">
      {request.isSuccess ? (
        <p className="notice" role="status">
          If an account exists for {email}, a link to choose a new password is on its way. It is valid for one hour.
        </p>
      ) : (
        <form onSubmit={submit} className="form" aria-label="Request a reset link">
          <Field label="E-mail" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
          <ErrorMessage error={request.error} />
          <button type="submit" className="button button-primary" disabled={request.isPending}>
            Send the link
          </button>
        </form>
      )}
      <p className="auth-links">
        <Link to="/login">Back to login</Link>
      </p>
    </AuthLayout>
  );
}
