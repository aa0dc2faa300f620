import { render } from 'preact';

import './styles.css';
import { interceptLinks } from './router';
import { App } from './views/App';

const root = document.getElementById('app');
if (root) {
  interceptLinks(root);
  render(<App />, root);
}
