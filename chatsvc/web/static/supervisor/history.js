// The last 15 minutes of metrics frames, in memory, for the charts. One point per frame, in
// `computed_ms` order (the desk's clock, the same on every gateway); nothing is kept across a
// reload: the server keeps no history for the dashboard, and 15 minutes refill by themselves.

export const HISTORY_MS = 15 * 60 * 1000;
// More than this between two frames (a reconnect, Redis out of reach) and the charts break
// their lines there instead of drawing a straight line over figures nobody saw.
const GAP_MS = 5000;

export class History {
  constructor() {
    this.points = []; // {t: ms, frame, byDept: Map id → DepartmentFigures} or a gap {t, frame: null}
  }

  // Adds a frame; false when it is not newer than the last one (the same cached figures again).
  add(frame) {
    const last = this.points[this.points.length - 1];
    if (last && frame.computed_ms <= last.t) return false;
    if (last && last.frame && frame.computed_ms - last.t > GAP_MS) {
      this.points.push({ t: last.t + 1, frame: null, byDept: new Map() });
    }
    const byDept = new Map(frame.departments.map((d) => [d.department, d]));
    this.points.push({ t: frame.computed_ms, frame, byDept });
    const oldest = frame.computed_ms - HISTORY_MS;
    let drop = 0;
    while (drop < this.points.length && this.points[drop].t < oldest) drop += 1;
    if (drop) this.points.splice(0, drop);
    return true;
  }

  clear() {
    this.points = [];
  }
}
