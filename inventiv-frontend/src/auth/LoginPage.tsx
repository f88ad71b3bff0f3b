// Login with e-mail and password; back to where the user was going.
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { ApiError } from '../api/client';
import { ErrorMessage, Field } from '../components/ui';
import { useLogin } from './api';
import { AuthLayout } from './AuthLayout';

/** Only same-app paths, so a crafted link cannot send the user elsewhere. */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function LoginPage() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const login = useLogin();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    login.mutate({ email, password }, { onSuccess: () => navigate(safeNext(params.get('next')), { replace: true }) });
  };
  const error = login.error;
  const throttled = error instanceof ApiError && error.code === 'RATE_LIMITED';
  return (
    <AuthLayout title="Log in">
      {params.get('expired') ? <p className="notice">Your session ended. Log in again.</p> : null}
      <form onSubmit={submit} className="form" aria-label="Log in">
        <Field label="E-mail" type="email" name="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
        <Field
          label="Password"
          type="password"
          name="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        {throttled ? (
          <p className="error" role="alert">
            Too many failed attempts. Try again in {Math.ceil(((error as ApiError).retryAfter ?? 60) / 60)} min.
          </p>
        ) : (
          <ErrorMessage error={error} />
        )}
        <button type="submit" className="button button-primary" disabled={login.isPending}>
          {login.isPending ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p className="auth-links">
        <Link to="/forgot-password">Forgot your password?</Link>
      </p>
    </AuthLayout>
  );
}
