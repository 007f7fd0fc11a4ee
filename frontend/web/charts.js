// Time-series charts drawn by uPlot (vendor/, served by this frontend: the page fetches
// nothing from elsewhere). uPlot is a classic script that may fail to load; then no chart
// is drawn and the table beside each one, which always holds the same numbers, is the view.

const PALETTE = ['#2b6cb0', '#c53030', '#2f855a', '#b7791f', '#6b46c1', '#4a5568', '#d53f8c', '#319795'];

export const chartsAvailable = () => typeof window.uPlot === 'function';

function barsPaths() {
  const paths = window.uPlot.paths;
  return paths && paths.bars ? paths.bars({ size: [0.8, 40] }) : undefined;
}

// A chart in `container` (emptied first). `series`: `[{ label, scale?, bars? }]` after the
// time axis; `scales`: `{ name: label }` of the y axes (the first on the left). Returns a
// handle whose `set(data)` redraws; `data` is `[times in s, ...one array per series]`. The
// `plugins` are uPlot's (e.g. markerPlugin). The last data set is kept on the container (`container.chartData`) for tests and debugging.
export function timeChart(container, { series, scales, height = 220, plugins = [] }) {
  let chart;
  const scaleNames = Object.keys(scales);
  const draw = (data) => {
    container.chartData = data;
    if (!chartsAvailable()) return;
    if (chart) {
      chart.setData(data);
      return;
    }
    container.replaceChildren();
    const opts = {
      width: Math.max(320, container.clientWidth || 640),
      height,
      plugins,
      scales: { x: { time: true } },
      series: [{}, ...series.map((s, i) => ({
        label: s.label,
        scale: s.scale || scaleNames[0],
        stroke: s.color || PALETTE[i % PALETTE.length],
        fill: s.bars ? `${s.color || PALETTE[i % PALETTE.length]}66` : undefined,
        paths: s.bars ? barsPaths() : undefined,
        points: { show: !s.bars },
        spanGaps: false,
      }))],
      axes: [{}, ...scaleNames.map((name, i) => ({ scale: name, label: scales[name], side: i === 0 ? 3 : 1, grid: { show: i === 0 } }))],
    };
    chart = new window.uPlot(opts, data, container);
  };
  return {
    set: draw,
    chart: () => chart,
    destroy: () => chart && chart.destroy(),
  };
}

// Marks moments on a chart: a dashed vertical line at each `{ at (s), label, color }`,
// drawn by a hook after each redraw; `marks` is read each time, so pushing to it suffices.
export function markerPlugin(marks) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.setLineDash([5, 4]);
        for (const mark of marks) {
          const x = u.valToPos(mark.at, 'x', true);
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          ctx.strokeStyle = mark.color;
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}
