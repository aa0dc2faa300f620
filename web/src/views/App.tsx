/** The page shell: a skip link, a small header (not on the big screen) and the routed view. */

import { useRoute } from '../router';
import { AudienceView } from './AudienceView';
import { ConsoleView } from './ConsoleView';
import { HomeView } from './HomeView';
import { ScreenView } from './ScreenView';

function Header() {
  return (
    <header class="site-header">
      <a class="brand" href="/">
        pollstream
      </a>
      <nav aria-label="Site">
        <a href="/">Join</a>
        <a href="/console">Present</a>
      </nav>
    </header>
  );
}

export function App() {
  const route = useRoute();
  if (route.name === 'screen') return <ScreenView key={route.code} code={route.code} />;
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <Header />
      {route.name === 'home' && <HomeView />}
      {route.name === 'poll' && <AudienceView key={route.code} code={route.code} />}
      {route.name === 'console' && <ConsoleView next={route.next} />}
      {route.name === 'not-found' && (
        <main id="main" tabIndex={-1} class="page narrow">
          <h1>Page not found</h1>
          <p>
            <a href="/">Join a poll</a> or <a href="/console">open the presenter console</a>.
          </p>
        </main>
      )}
    </>
  );
}
