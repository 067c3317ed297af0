// Building the page from elements and text nodes only: a value from the API
// is always text (textContent), never HTML, so a customer named
// <img src=x onerror=...> shows as exactly that.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function mount(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

// a form's named fields as an object of strings
export function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// What a person types into a form survives a reload or a new sign-in (an
// expired token): kept in sessionStorage under key until the form is sent.
export function keepDraft(form, key) {
  const storageKey = `draft:${key}`;
  const saved = JSON.parse(sessionStorage.getItem(storageKey) || '{}');
  for (const [name, value] of Object.entries(saved)) {
    const field = form.elements.namedItem(name);
    if (field && field.type !== 'file') field.value = value;
  }
  form.addEventListener('input', () => {
    const values = Object.fromEntries([...new FormData(form)].filter(([, v]) => typeof v === 'string'));
    sessionStorage.setItem(storageKey, JSON.stringify(values));
  });
  return () => sessionStorage.removeItem(storageKey);
}

// "Next page" for a keyset-paged list: the same page with the API's cursor.
export function nextPageLink(path, params, nextCursor) {
  if (!nextCursor) return null;
  const next = new URLSearchParams(params);
  next.set('cursor', nextCursor);
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, h('a', { href: `#${path}?${next}`, rel: 'next' }, 'Next page'));
}
