/** `/`: where the audience types the join code shown on the big screen. */

import { useEffect, useState } from 'preact/hooks';

import { looksLikeCode, navigate, normalizeCode, pollPath } from '../router';

export function HomeView() {
  const [code, setCode] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    document.title = 'Join a poll · pollstream';
  }, []);

  const submit = (event: Event) => {
    event.preventDefault();
    const normalized = normalizeCode(code);
    if (!looksLikeCode(normalized)) {
      setProblem('Type the code shown on the screen: letters and digits, like K7QM2P.');
      return;
    }
    navigate(pollPath(normalized));
  };

  return (
    <main id="main" tabIndex={-1} class="page narrow">
      <h1>Join a poll</h1>
      <form class="join-form" onSubmit={submit} noValidate>
        <label for="join-code">Join code</label>
        <div class="join-row">
          <input
            id="join-code"
            name="code"
            class="code-input"
            value={code}
            onInput={(e) => setCode((e.target as HTMLInputElement).value)}
            autocomplete="off"
            autocapitalize="characters"
            spellcheck={false}
            maxLength={20}
            aria-describedby={problem ? 'join-problem' : 'join-hint'}
            aria-invalid={problem ? true : undefined}
            required
          />
          <button type="submit" class="primary">
            Join
          </button>
        </div>
        {problem ? (
          <p id="join-problem" class="problem" role="alert">
            {problem}
          </p>
        ) : (
          <p id="join-hint" class="hint">
            The code is on the presenter's screen.
          </p>
        )}
      </form>
      <p class="aside">
        Presenting? <a href="/console">Open the presenter console</a>.
      </p>
    </main>
  );
}
