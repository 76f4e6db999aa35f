// The session's time in the page: the time left in the toolbar, a warning five minutes before the
// end with an offer to extend, the extend button, and why a session ended. The deadline comes from the
// room (a `deadline` effect on every attach and after each extension), so every tab shows the same
// one; the longest a session may reach comes from the control plane's view of the session.

/** Seconds before the end when the page warns. */
export const WARN_SECS = 5 * 60;
/** What one click of "extend" asks for, at most. */
export const EXTEND_SECS = 60 * 60;

/** "7 h 59 m", "4 m 05 s", "12 s". */
export function formatLeft(secs) {
  const s = Math.max(0, Math.floor(secs));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} m`;
  if (m > 0) return `${m} m ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

export class Countdown {
  /**
   * @param {object} o
   * @param {(id: string) => HTMLElement} o.$
   * @param {(by: number) => Promise<{expires_at: number}>} o.extend  asks the control plane
   * @param {(message: string, kind?: string) => void} o.toast
   */
  constructor({ $, extend, toast }) {
    this.$ = $;
    this.extendCall = extend;
    this.toast = toast;
    this.deadline = null;
    this.longest = null;
    this.dismissed = false;
    this.timer = null;
    $('extend').onclick = () => this.extend();
    $('deadline-extend').onclick = () => this.extend();
    $('deadline-dismiss').onclick = () => {
      this.dismissed = true;
      this.render();
    };
  }

  /** Starts counting for a newly opened session. */
  start() {
    this.stop();
    this.deadline = null;
    this.longest = null;
    this.dismissed = false;
    this.timer = setInterval(() => this.render(), 1000);
    this.render();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.$('deadline-warning').hidden = true;
  }

  /** The room said when the session ends (epoch seconds). */
  setDeadline(at) {
    if (this.deadline !== null && at > this.deadline) this.dismissed = false;
    this.deadline = at;
    this.render();
  }

  /** The latest an extension may reach (epoch seconds), from the session's view. */
  setLongest(at) {
    this.longest = at;
    this.render();
  }

  left() {
    return this.deadline === null ? null : this.deadline - Date.now() / 1000;
  }

  /** How much one extension may add now. */
  extendable() {
    if (this.deadline === null || this.longest === null) return EXTEND_SECS;
    return Math.max(0, Math.min(EXTEND_SECS, Math.floor(this.longest - this.deadline)));
  }

  render() {
    const left = this.left();
    const el = this.$('time-left');
    const bar = this.$('deadline-warning');
    if (left === null) {
      el.textContent = '';
      bar.hidden = true;
      return;
    }
    el.replaceChildren(formatLeft(left), Object.assign(document.createElement('span'), { className: 'long', textContent: ' left' }));
    el.dataset.warn = String(left <= WARN_SECS);
    el.title = `The session ends at ${new Date(this.deadline * 1000).toLocaleString()}`;
    const by = this.extendable();
    this.$('extend').disabled = by <= 0;
    this.$('extend').title = by > 0 ? `Add ${formatLeft(by)}` : 'This session has reached its longest lifetime';
    bar.hidden = !(left <= WARN_SECS && left > 0 && !this.dismissed);
    if (!bar.hidden) {
      this.$('deadline-warning-text').textContent = `This session ends in ${formatLeft(left)}.`;
      this.$('deadline-extend').hidden = by <= 0;
      this.$('deadline-extend').textContent = `Extend by ${formatLeft(by)}`;
    }
  }

  async extend() {
    const by = this.extendable();
    if (by <= 0) {
      this.toast('This session has reached the longest lifetime allowed.');
      return;
    }
    try {
      const answer = await this.extendCall(by);
      this.setDeadline(answer.expires_at);
      this.toast(`Extended: the session now ends at ${new Date(answer.expires_at * 1000).toLocaleTimeString()}.`, 'info');
    } catch (e) {
      this.toast(e.message);
    }
  }
}
