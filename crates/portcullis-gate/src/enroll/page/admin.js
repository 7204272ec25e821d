// The admin's page for enrolment links: a form posted as JSON to the gate, which checks
// the caller's role, makes the token and answers with the link. Text goes into the page
// with textContent only.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const base = $('admin').dataset.base;
  const show = (id, text) => {
    $(id).textContent = text;
  };

  $('form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('error').hidden = true;
    $('go').disabled = true;
    const ou = $('ou').value.split(',').map((s) => s.trim()).filter((s) => s);
    const ask = {
      name: $('name').value.trim(),
      email: $('email').value.trim() || null,
      ou,
      ttl: $('ttl').value.trim(),
      validity: $('validity').value.trim(),
    };
    try {
      const answer = await fetch(`${base}/tokens`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(ask),
        cache: 'no-store',
      });
      const body = await answer.json();
      if (!answer.ok) throw new Error(body.error || `the gate answered ${answer.status}`);
      show('for', body.common_name);
      show('link', body.link);
      show('expires', body.expires);
      show('id', body.id);
      $('done').hidden = false;
    } catch (e) {
      show('error', `The link was not made: ${e.message}`);
      $('error').hidden = false;
    } finally {
      $('go').disabled = false;
    }
  });
})();
