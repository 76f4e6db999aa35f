// The template picker on the home page: what the user may start (`GET /api/templates`), each template's
// description, a field for each variable its template lets users set, and a repository to clone when
// the template takes one. The control plane checks everything again; empty fields are left out.

export class TemplatePicker {
  /** `select`, `description` and `envFields` are the page's elements. */
  constructor(select, description, envFields) {
    this.select = select;
    this.description = description;
    this.envFields = envFields;
    this.repo = document.getElementById('template-repo');
    this.templates = [];
    this.secretNames = [];
    this.select.onchange = () => this.render();
  }

  /** Shows `listed` (the API's `templates`), keeping the current choice when it is still offered. */
  show(listed, fallback) {
    const keep = this.select.value;
    this.templates = listed;
    this.select.innerHTML = '';
    for (const t of listed) {
      const option = document.createElement('option');
      option.value = t.name;
      option.textContent = t.title;
      this.select.append(option);
    }
    const names = listed.map((t) => t.name);
    this.select.value = names.includes(keep) ? keep : names.includes(fallback) ? fallback : names[0] ?? '';
    this.select.closest('label').hidden = listed.length <= 1;
    this.render();
  }

  /** The names of the user's secrets, so the description can say which the template gets. */
  setSecrets(names) {
    this.secretNames = names;
    this.render();
  }

  current() {
    return this.templates.find((t) => t.name === this.select.value);
  }

  render() {
    const t = this.current();
    const regions = t ? t.regions.join(', ') : '';
    const secrets = t && t.secrets && t.secrets.length
      ? 'Takes your secrets: ' + t.secrets.map((s) => `${s} (${this.secretNames.includes(s) ? 'set' : 'not set'})`).join(', ') + '.'
      : '';
    const repo = t && t.repo_hosts && t.repo_hosts.length ? `Clones a repository from ${t.repo_hosts.join(', ')}.` : '';
    this.description.textContent = t ? [t.description, regions && `Offered in ${regions}.`, repo, secrets].filter(Boolean).join(' ') : '';
    const hosts = t && t.repo_hosts ? t.repo_hosts : [];
    this.repo.hidden = hosts.length === 0;
    this.repo.querySelector('#repo-url').placeholder = hosts.length ? `an https:// URL on ${hosts.join(', ')}` : '';
    const kept = this.values();
    this.envFields.innerHTML = '';
    for (const name of t ? t.env : []) {
      const label = document.createElement('label');
      label.className = 'field env';
      const code = document.createElement('code');
      code.textContent = name;
      const input = document.createElement('input');
      input.dataset.env = name;
      input.autocomplete = 'off';
      input.spellcheck = false;
      input.value = kept[name] ?? '';
      label.append(code, input);
      this.envFields.append(label);
    }
  }

  values() {
    const out = {};
    for (const input of this.envFields.querySelectorAll('input[data-env]')) {
      if (input.value !== '') out[input.dataset.env] = input.value;
    }
    return out;
  }

  /** The mint request's `template` and `env` (nothing when no catalogue was loaded). */
  request() {
    const t = this.current();
    if (!t) return {};
    const out = { template: t.name, env: this.values() };
    const url = this.repo.querySelector('#repo-url').value.trim();
    const ref = this.repo.querySelector('#repo-ref').value.trim();
    if (!this.repo.hidden && url) out.repo = ref ? { url, ref } : { url };
    return out;
  }
}
