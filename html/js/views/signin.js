// Sign in with the API's login; the token goes to sessionStorage.
import { h, mount, fields } from '../dom.js';
import { api, session } from '../api.js';

export async function render(main, { params }) {
  const message = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { onsubmit: submit },
    h('label', {}, 'Email', h('input', { name: 'email', type: 'email', required: true, autocomplete: 'username' })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', required: true,
                                            autocomplete: 'current-password' })),
    h('button', { type: 'submit' }, 'Sign in'), message);
  mount(main, h('section', { class: 'signin card' }, h('h1', {}, 'Sign in'),
    params.get('expired') ? h('p', { class: 'notice' }, 'Your session ended. Sign in again to go on where you were.') : null,
    form));
  form.querySelector('input').focus();

  async function submit(event) {
    event.preventDefault();
    message.textContent = '';
    try {
      const { token } = await api('POST', '/auth/login', fields(form));
      session.token = token;
      session.me = null;
      location.hash = params.get('next') || '#/';
    } catch (error) {
      message.textContent = error.message;
    }
  }
}
