// Where the web app is and what it says: the page in the URL's hash, going
// to another page, and the status line.  Views and the router share these;
// app.js (the router) renders the page that the hash names.

export function parseHash() {
  const [path, query = ''] = (location.hash.slice(1) || '/').split('?');
  return { path, params: new URLSearchParams(query) };
}

export function go(path, params) {
  const query = params && [...params].length ? `?${params}` : '';
  location.hash = `#${path}${query}`;
}

export function say(message) {
  document.getElementById('status').textContent = message || '';
}
