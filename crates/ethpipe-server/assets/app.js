// ethpipe dashboard script: live updates of runs and backfills (polling the
// JSON API), "run now", the backfill form and trigger toggles. Plain
// JavaScript served from the binary; no build step. Everything it shows is
// set with textContent, never parsed as HTML.
(function () {
  'use strict';

  var TOKEN_KEY = 'ethpipe.apiToken';
  var POLL_MS = 1000;

  function headers(json) {
    var h = { 'Accept': 'application/json' };
    if (json) h['Content-Type'] = 'application/json';
    var token = window.localStorage.getItem(TOKEN_KEY);
    if (token) h['Authorization'] = 'Bearer ' + token;
    return h;
  }

  function request(method, url, body) {
    return fetch(url, {
      method: method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) {
          throw new Error((data && data.error) || (response.status + ' ' + response.statusText));
        }
        return data;
      });
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function badge(status) {
    return el('span', 'status status-' + status, status);
  }

  function number(n) {
    return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
  }

  // The same as the server's views::amounts::duration: 850 ms, 1.24 s,
  // 12.3 s, 2 min 3 s, 1 h 5 min.
  function duration(s) {
    if (s === null || s === undefined || !(s >= 0)) return '–';
    var ms = Math.round(s * 1000);
    if (ms === 0) return '< 1 ms';
    if (ms < 1000) return ms + ' ms';
    var pad = function (x) { return (x < 10 ? '0' : '') + x; };
    if (ms < 9995) {
      var hundredths = Math.floor((ms + 5) / 10);
      return Math.floor(hundredths / 100) + '.' + pad(hundredths % 100) + ' s';
    }
    if (ms < 59950) {
      var tenths = Math.floor((ms + 50) / 100);
      return Math.floor(tenths / 10) + '.' + (tenths % 10) + ' s';
    }
    var whole = Math.floor((ms + 500) / 1000);
    if (whole < 3600) return Math.floor(whole / 60) + ' min ' + (whole % 60) + ' s';
    return Math.floor(whole / 3600) + ' h ' + Math.floor((whole % 3600) / 60) + ' min';
  }

  // As the server renders it (views::tokens_label): the address, or
  // "N tokens" with the addresses on hover.
  function tokensLabel(tokens) {
    var label = tokens.length === 1
      ? el('span', 'tokens mono', tokens[0])
      : el('span', 'tokens', tokens.length + ' tokens');
    label.title = tokens.join('\n');
    return label;
  }

  function runRow(run) {
    var tr = el('tr');
    tr.dataset.runId = run.id;
    var idCell = el('td');
    var link = el('a', null, '#' + run.id);
    link.href = '/runs/' + run.id;
    idCell.appendChild(link);
    tr.appendChild(idCell);
    var pipeline = el('td', null, run.pipeline);
    if (run.tokens) {
      pipeline.appendChild(document.createTextNode(' '));
      var small = el('small', 'run-tokens');
      small.appendChild(tokensLabel(run.tokens));
      pipeline.appendChild(small);
    }
    tr.appendChild(pipeline);
    tr.appendChild(el('td', null, run.day || 'full load'));
    tr.appendChild(el('td', null, run.trigger));
    var status = el('td', 'status-cell');
    status.appendChild(badge(run.status));
    tr.appendChild(status);
    tr.appendChild(el('td', null, run.started_at));
    tr.appendChild(el('td', 'duration num', duration(run.duration_seconds)));
    tr.appendChild(el('td', 'rows num', number(run.rows_written)));
    tr.appendChild(el('td', 'error', run.error || ''));
    return tr;
  }

  function replaceRows(tbody, rows, emptyText, columns) {
    // Keep the server's empty row (its commands are marked up) while still empty.
    var onlyEmpty = tbody.children.length === 1 && tbody.firstElementChild.classList.contains('empty');
    if (rows.length === 0 && onlyEmpty) return;
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    rows.forEach(function (row) { tbody.appendChild(row); });
    if (rows.length === 0) {
      var tr = el('tr', 'empty');
      var td = el('td', null, emptyText);
      td.colSpan = columns;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  function refreshRuns() {
    var tbody = document.getElementById('runs-body');
    if (!tbody) return Promise.resolve();
    return request('GET', '/api/v1/runs?limit=20').then(function (data) {
      replaceRows(tbody, data.runs.map(runRow), tbody.dataset.empty || 'No runs yet.', 9);
    });
  }

  function backfillRow(b) {
    var tr = el('tr');
    tr.dataset.backfillId = b.id;
    tr.appendChild(el('td', null, b.id));
    tr.appendChild(el('td', null, b.pipeline));
    tr.appendChild(el('td', null, b.from + ' … ' + b.to));
    var state = el('td');
    state.appendChild(badge(b.state));
    tr.appendChild(state);
    [b.days_loaded, b.days_skipped, b.days_failed, b.days_planned, b.rows].forEach(function (n) {
      tr.appendChild(el('td', 'num', number(n)));
    });
    tr.appendChild(el('td', 'error', b.error || ''));
    return tr;
  }

  function refreshBackfills() {
    var tbody = document.getElementById('backfills-body');
    if (!tbody) return Promise.resolve();
    return request('GET', '/api/v1/backfills').then(function (data) {
      replaceRows(tbody, data.backfills.map(backfillRow), tbody.dataset.empty || 'No backfills started from this server.', 10);
    });
  }

  // Polls forever on the dashboard; errors (a restart) are retried next tick.
  function pollDashboard() {
    Promise.all([refreshRuns(), refreshBackfills()]).catch(function () {}).then(function () {
      window.setTimeout(pollDashboard, POLL_MS);
    });
  }

  function showMessage(id, text, href) {
    var box = document.getElementById(id);
    if (!box) return;
    box.textContent = text;
    if (href) {
      box.appendChild(document.createTextNode(' '));
      var link = el('a', null, 'open');
      link.href = href;
      box.appendChild(link);
    }
  }

  function bindForms() {
    var runForm = document.getElementById('run-form');
    if (runForm) {
      runForm.addEventListener('submit', function (event) {
        event.preventDefault();
        var body = {
          pipeline: document.getElementById('run-pipeline').value,
          day: document.getElementById('run-day').value
        };
        showMessage('run-message', 'starting…');
        request('POST', '/api/v1/runs', body).then(function (data) {
          var message = document.getElementById('run-message');
          message.dataset.runId = data.run_id;
          showMessage('run-message', 'Run #' + data.run_id + ' started: ' + data.pipeline + ' ' + data.day + '.', data.url);
          return refreshRuns();
        }).catch(function (error) {
          showMessage('run-message', 'Not started: ' + error.message);
        });
      });
    }
    var backfillForm = document.getElementById('backfill-form');
    if (backfillForm) {
      backfillForm.addEventListener('submit', function (event) {
        event.preventDefault();
        var body = {
          pipeline: document.getElementById('backfill-pipeline').value,
          from: document.getElementById('backfill-from').value,
          to: document.getElementById('backfill-to').value,
          parallel: Number(document.getElementById('backfill-parallel').value || 1),
          force: document.getElementById('backfill-force').checked
        };
        showMessage('backfill-message', 'starting…');
        request('POST', '/api/v1/backfills', body).then(function (data) {
          showMessage('backfill-message', 'Backfill ' + data.id + ' started: ' + data.pipeline + ' ' + data.from + ' … ' + data.to + '.');
          return refreshBackfills();
        }).catch(function (error) {
          showMessage('backfill-message', 'Not started: ' + error.message);
        });
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll('input.trigger-toggle'), function (box) {
      box.addEventListener('change', function () {
        var wanted = box.checked;
        var label = box.parentNode.querySelector('span');
        request('PUT', '/api/v1/triggers/' + encodeURIComponent(box.dataset.trigger) + '/active', { active: wanted })
          .then(function (data) { if (label) label.textContent = data.active ? 'active' : 'inactive'; })
          .catch(function (error) {
            box.checked = !wanted;
            if (label) label.textContent = 'not changed: ' + error.message;
          });
      });
    });
    var token = document.getElementById('api-token');
    if (token) {
      token.value = window.localStorage.getItem(TOKEN_KEY) || '';
      token.addEventListener('change', function () {
        window.localStorage.setItem(TOKEN_KEY, token.value.trim());
      });
    }
  }

  // The run page: while the run is running, refresh its figures and append
  // new log lines; once it has finished, reload to show its steps.
  function pollRun(section) {
    var id = section.dataset.runId;
    var logs = document.getElementById('logs');
    var after = Number((logs && logs.dataset.after) || 0);
    function tick() {
      Promise.all([
        request('GET', '/api/v1/runs/' + id),
        request('GET', '/api/v1/runs/' + id + '/logs?after=' + after)
      ]).then(function (results) {
        var run = results[0].run;
        var status = document.getElementById('run-status');
        status.textContent = '';
        status.appendChild(badge(run.status));
        document.getElementById('run-rows').textContent = number(run.rows_written);
        document.getElementById('run-source-rows').textContent = number(run.source_rows);
        document.getElementById('run-duration').textContent = duration(run.duration_seconds);
        document.getElementById('run-finished').textContent = run.finished_at || '–';
        document.getElementById('run-error').textContent = run.error || '';
        var body = document.getElementById('logs-body');
        results[1].logs.forEach(function (line) {
          var tr = el('tr');
          tr.dataset.logId = line.id;
          tr.appendChild(el('td', null, line.at));
          tr.appendChild(el('td', null, line.level));
          tr.appendChild(el('td', 'mono', line.message));
          body.appendChild(tr);
        });
        after = results[1].next_after;
        section.dataset.status = run.status;
        if (run.status === 'running') {
          window.setTimeout(tick, POLL_MS);
        } else {
          window.location.reload();
        }
      }).catch(function () { window.setTimeout(tick, POLL_MS * 2); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.addEventListener('DOMContentLoaded', function () {
    bindForms();
    if (document.querySelector('[data-live="runs"]') || document.querySelector('[data-live="backfills"]')) {
      window.setTimeout(pollDashboard, POLL_MS);
    }
    var run = document.getElementById('run');
    if (run && run.dataset.status === 'running') pollRun(run);
  });
})();
