// The REST API: the token lives in sessionStorage (gone with the tab, never
// a cookie), a 401 sends the user to sign in and back to where they were.

const TOKEN = 'recovery.token';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
    this.detail = body?.detail;
    this.hint = body?.hint;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  set token(value) { value ? sessionStorage.setItem(TOKEN, value) : sessionStorage.removeItem(TOKEN); },
  me: null,
};

function authHeaders() {
  return session.token ? { Authorization: `Bearer ${session.token}` } : {};
}

export async function api(method, path, body, { raw = false, headers = {} } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/api/v1${path}`, init);
  if (res.status === 401 && session.token) expired();
  if (raw && res.ok) return res;
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await res.json() : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// an expired token: back to sign in, keeping the place and what was typed
function expired() {
  session.token = null;
  session.me = null;
  const next = location.hash || '#/';
  if (!next.startsWith('#/signin')) location.hash = `#/signin?next=${encodeURIComponent(next)}&expired=1`;
}

// uploads with progress: fetch has none, XMLHttpRequest does
export function upload(path, file, onProgress) {
  return sendFile(`${path}?filename=${encodeURIComponent(file.name)}`, file, onProgress);
}

// a file as the raw body of a POST (path with its query), with progress
export function sendFile(path, file, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1${path}`);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else {
        if (xhr.status === 401) expired();
        reject(new ApiError(xhr.status, data));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { message: 'the upload could not reach the server' }));
    xhr.send(file);
  });
}
