// Money is minor units and a currency, formatted exactly (no floats): the
// amount goes to Intl as a decimal string.  How many minor units a currency
// has is ISO 4217's, which Intl knows as well as recovery.currencies does.

export function minorUnits(currency) {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
}

export function money(amount, currency) {
  if (amount === null || amount === undefined) return '';
  if (!currency) return String(amount);
  const units = minorUnits(currency);
  const negative = BigInt(amount) < 0n;
  const digits = (negative ? -BigInt(amount) : BigInt(amount)).toString().padStart(units + 1, '0');
  const decimal = units ? `${digits.slice(0, -units)}.${digits.slice(-units)}` : digits;
  return new Intl.NumberFormat(navigator.language || 'en-GB', {
    style: 'currency', currency, minimumFractionDigits: units, maximumFractionDigits: units,
  }).format(`${negative ? '-' : ''}${decimal}`);
}

// "12.5" or "12,50" typed by a person, as minor units; null when it is not a number
export function parseMoney(text, currency) {
  const units = minorUnits(currency);
  const match = String(text).trim().replace(',', '.').match(/^(\d{1,15})(?:\.(\d*))?$/);
  if (!match || (match[2] || '').length > units) return null;
  return Number(BigInt(match[1]) * 10n ** BigInt(units) + BigInt((match[2] || '').padEnd(units, '0') || '0'));
}

export function date(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString(navigator.language || 'en-GB', {
    dateStyle: 'medium', timeStyle: value.length > 10 ? 'short' : undefined,
  });
}
