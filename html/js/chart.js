// A bar chart as SVG built with DOM calls: labels are text nodes.
const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// bars: [{label, value, caption}]
export function barChart(title, bars) {
  const width = 520, height = 200, top = 20, bottom = 40, gap = 12;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const barWidth = bars.length ? (width - gap * (bars.length + 1)) / bars.length : 0;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title });
  root.append(svg('title', {}, title));
  bars.forEach((bar, i) => {
    const barHeight = Math.round((height - top - bottom) * bar.value / max);
    const x = gap + i * (barWidth + gap);
    const y = height - bottom - barHeight;
    root.append(svg('rect', { x, y, width: barWidth, height: barHeight }));
    root.append(svg('text', { x: x + barWidth / 2, y: y - 4, 'text-anchor': 'middle' }, bar.caption));
    root.append(svg('text', { x: x + barWidth / 2, y: height - bottom + 16, 'text-anchor': 'middle' }, bar.label));
  });
  return root;
}
