// The secrets card on the home page: the user's secrets by name and when each was set (values never
// come back), a form to set one (the value field is cleared as soon as it is sent) and a button to
// delete one. Templates name the secrets they take; the picker says which of those are set.

export class SecretsCard {
  /** `list`, `form` are the page's elements; `api` and `token` call the control plane. */
  constructor({ list, form, api, token, onError, onChange }) {
    Object.assign(this, { list, form, api, token, onError, onChange });
    this.names = [];
    form.onsubmit = (e) => {
      e.preventDefault();
      this.save();
    };
  }

  async refresh() {
    try {
      const { secrets } = await this.api.secrets(await this.token());
      this.show(secrets);
    } catch (e) {
      this.onError(e);
    }
  }

  show(secrets) {
    this.names = secrets.map((s) => s.name);
    this.list.innerHTML = '';
    if (secrets.length === 0) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'No secrets yet. Templates that take one (an API key, a Git token) get it as a variable.';
      this.list.append(li);
    }
    for (const s of secrets) {
      const li = document.createElement('li');
      li.className = 'secret';
      li.innerHTML = '<code></code><span class="meta"></span><button class="ghost danger">Delete</button>';
      li.querySelector('code').textContent = s.name;
      li.querySelector('.meta').textContent = `set ${new Date(s.set_at * 1000).toLocaleString()}`;
      const del = li.querySelector('button');
      del.setAttribute('aria-label', `Delete secret ${s.name}`);
      del.onclick = async () => {
        try {
          await this.api.deleteSecret(await this.token(), s.name);
        } catch (e) {
          this.onError(e);
        }
        await this.refresh();
      };
      this.list.append(li);
    }
    this.onChange(this.names);
  }

  async save() {
    const name = this.form.querySelector('[name=name]');
    const value = this.form.querySelector('[name=value]');
    const sent = value.value;
    // The value leaves the page's fields at once, whatever the answer.
    value.value = '';
    try {
      await this.api.setSecret(await this.token(), name.value.trim(), sent);
      name.value = '';
    } catch (e) {
      this.onError(e);
    }
    await this.refresh();
  }
}
