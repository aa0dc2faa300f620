/** Log in, or create the account, that owns polls. */

import { useState } from 'preact/hooks';

import { errorMessage } from '../api/http';
import { account } from '../session';

export function LoginForm({ notice }: { notice: string | null }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const registering = mode === 'register';

  const submit = async (event: Event) => {
    event.preventDefault();
    setProblem(null);
    if (registering && password.length < 8) {
      setProblem('Choose a password of at least 8 characters.');
      return;
    }
    setBusy(true);
    try {
      if (registering) await account.register(email, password);
      else await account.login(email, password);
    } catch (err) {
      setProblem(errorMessage(err));
      setBusy(false);
    }
  };

  return (
    <section class="card auth" aria-labelledby="auth-heading">
      <h1 id="auth-heading">{registering ? 'Create a presenter account' : 'Log in to present'}</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} class="stack" noValidate>
        <label for="auth-email">Email</label>
        <input
          id="auth-email"
          type="email"
          name="email"
          autocomplete="email"
          value={email}
          onInput={(e) => setEmail(e.currentTarget.value)}
          required
        />
        <label for="auth-password">Password</label>
        <input
          id="auth-password"
          type="password"
          name="password"
          autocomplete={registering ? 'new-password' : 'current-password'}
          minLength={registering ? 8 : undefined}
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          aria-describedby={registering ? 'password-hint' : undefined}
          required
        />
        {registering && (
          <p id="password-hint" class="hint">
            8 to 128 characters.
          </p>
        )}
        {problem && (
          <p class="problem" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {registering ? 'Create account' : 'Log in'}
        </button>
      </form>
      <p class="aside">
        {registering ? 'Have an account already? ' : 'New here? '}
        <button
          type="button"
          class="link"
          onClick={() => {
            setMode(registering ? 'login' : 'register');
            setProblem(null);
          }}
        >
          {registering ? 'Log in' : 'Create an account'}
        </button>
      </p>
    </section>
  );
}
