// A live line plot on a <canvas>, drawn by hand: values over time, the y axis from zero in
// round steps above the largest value.

const TICKS = 4;

/** A round grid step (1, 2 or 5 times a power of ten) of which `ticks` cover `value`. */
export function gridStep(value, ticks = TICKS) {
  if (!(value > 0)) return 0.25;
  const wanted = value / ticks;
  const power = 10 ** Math.floor(Math.log10(wanted));
  for (const step of [1, 2, 5]) if (step * power >= wanted) return step * power;
  return 10 * power;
}

export class Plot {
  /** `format(value)` labels the y axis; `unit` is its title. */
  constructor(canvas, { unit, format = (v) => String(v), color = "#2563eb" }) {
    this.canvas = canvas;
    this.unit = unit;
    this.format = format;
    this.color = color;
    this.points = []; // [seconds since start, value]
    this.draw();
  }

  add(t, value) {
    this.points.push([t, value]);
    this.draw();
  }

  clear() {
    this.points = [];
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = globalThis.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 220;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 64, right = 20, top = 22, bottom = 28;
    const w = width - left - right, h = height - top - bottom;
    const tStep = gridStep(Math.max(10, ...this.points.map(([t]) => t)), 5);
    const maxT = tStep * Math.ceil(Math.max(10, ...this.points.map(([t]) => t)) / tStep);
    const step = gridStep(Math.max(0, ...this.points.map(([, v]) => v)) * 1.05);
    const maxV = step * TICKS;

    g.font = "12px system-ui, sans-serif";
    g.fillStyle = "#6b7280";
    g.strokeStyle = "#e5e7eb";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= TICKS; i++) {
      const y = top + h - (h * i) / TICKS;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + w, y);
      g.stroke();
      g.fillText(this.format(step * i), left - 6, y);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let t = 0; t <= maxT + tStep / 2; t += tStep) {
      g.fillText(`${Math.round(t * 100) / 100} s`, left + (w * t) / maxT, top + h + 8);
    }
    g.textAlign = "left";
    g.textBaseline = "top";
    g.fillText(this.unit, left, 4);

    if (this.points.length === 0) {
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillText("no data yet", left + w / 2, top + h / 2);
      return;
    }
    const x = (t) => left + (w * t) / maxT;
    const y = (v) => top + h - (h * v) / maxV;
    g.strokeStyle = this.color;
    g.lineWidth = 2;
    g.beginPath();
    this.points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    g.fillStyle = this.color;
    for (const [t, v] of this.points) {
      g.beginPath();
      g.arc(x(t), y(v), 2.5, 0, 2 * Math.PI);
      g.fill();
    }
  }
}
